"""A throwaway mail system for newcomers and tests, and the `mailbot sandbox` commands."""
