"""Adds the data packages mapped from the top of the repository (templates/, config/, docs/,
see `[tool.setuptools.package-dir]` in pyproject.toml) to the packages that
`[tool.setuptools.packages.find]` discovers under mailbot/: automatic discovery only sees
directories inside mailbot/, and a setuptools table cannot list packages and discover them
at once. Everything else is declared in pyproject.toml."""

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_PACKAGES = ("mailbot.templates", "mailbot.config", "mailbot.docs")


class BuildWithData(build_py):
    def finalize_options(self) -> None:
        packages = list(self.distribution.packages or ())
        self.distribution.packages = packages + [p for p in DATA_PACKAGES if p not in packages]
        super().finalize_options()


setup(cmdclass={"build_py": BuildWithData})
