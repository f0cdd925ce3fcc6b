"""The one rule for who may act on a ticket by email (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.settings import Settings
from mailbot.standards import authority


@dataclass(frozen=True)
class Place:
    category: str
    mailbox: str


def test_only_the_current_queues_staff_and_supervisors_may_act(base_settings: Settings) -> None:
    complaint = Place("complaint", "renseignements")  # a complaint found in the info mailbox
    assert authority.queue_of(base_settings, complaint).name == "plaintes"

    def verdict(sender: str) -> authority.Permission:
        return authority.may_act_on(base_settings, complaint, sender)

    assert verdict("Agent.Plaintes@MRI.gouv.qc.ca").allowed
    assert verdict("superviseur@mri.gouv.qc.ca").supervisor
    assert verdict("agent.info@mri.gouv.qc.ca").reason == authority.NOT_ON_QUEUE
    assert verdict("marc.gagnon@mri.gouv.qc.ca").reason == authority.NOT_ON_QUEUE
    assert verdict("plaintes@mri.gouv.qc.ca").reason == authority.OWN_MAILBOX
    assert verdict("agent.info@mri.gouv.qc.ca").queue == "plaintes"
    information = Place("information", "renseignements")
    assert authority.may_act_on(base_settings, information, "agent.info@mri.gouv.qc.ca").allowed
    assert not authority.may_act_on(
        base_settings, information, "agent.plaintes@mri.gouv.qc.ca"
    ).allowed
