"""ScanResult.action (the API's and the notifications' text) is computed from real fields, and the
migration reads every text s3av wrote back into the same fields (issue 9)."""

import importlib

import pytest

from scanning.models import ScanResult, action_text, parse_action_text

migration = importlib.import_module("scanning.migrations.0009_result_action_fields")

# (text, verdict, resolution, action_status): every action text the code paths of s3av wrote.
WRITTEN = [
    ("", "Infected", "", ""),
    ("", "Infected", "", "pending"),
    ("none", "Error", "", "done"),
    ("tagged", "Clean", "", "done"),
    ("tagged+promoted", "Clean", "", "done"),
    ("tagged+quarantined", "Infected", "", "done"),
    ("tagged+deleted", "Infected", "deleted_by_policy", "done"),
    ("tagged+superseded", "Infected", "", "done"),
    ("superseded", "Clean", "", "done"),
    ("tagged+failed", "Infected", "", "failed"),
    ("failed", "Infected", "", "failed"),
    ("stored+tagged", "Clean", "", "done"),
    ("stored+tagged+promoted", "Clean", "", "done"),
    ("stored+tagged+failed", "Clean", "", "failed"),
    ("released", "InfectedAllowed", "released", "done"),
    ("tagged+quarantined+releasing", "Infected", "", "done"),
    ("tagged+quarantined+released", "Infected", "released", "done"),
    ("tagged+quarantined+deleting", "Infected", "", "done"),
    ("tagged+quarantined+deleted", "Infected", "deleted", "done"),
    ("tagged+deleted", "Infected", "deleted", "done"),
    ("none+deleted", "Error", "gone", "done"),
    ("tagged+failed+deleted", "Unscannable", "deleted", "failed"),
]


@pytest.mark.parametrize(("text", "verdict", "resolution", "status"), WRITTEN)
def test_every_written_action_reads_back_as_the_same_text(text, verdict, resolution, status):
    flags, triage = parse_action_text(text, verdict, resolution)
    assert action_text(flags, status, triage) == text


@pytest.mark.parametrize(("text", "verdict", "resolution", "status"), WRITTEN)
def test_the_migration_reads_the_texts_as_the_model_does(text, verdict, resolution, status):
    assert migration._parse(text, verdict, resolution) == parse_action_text(text, verdict, resolution)


def test_a_policy_delete_and_an_operator_delete_are_told_apart_by_the_resolution():
    by_policy = ScanResult(verdict="Infected", resolution="deleted_by_policy", action="tagged+deleted")
    by_operator = ScanResult(verdict="Infected", resolution="deleted", action="tagged+deleted")
    assert (by_policy.deleted, by_policy.triage_action) == (True, "")
    assert (by_operator.deleted, by_operator.triage_action) == (False, "deleted")
    assert by_policy.moved_away and by_operator.moved_away
    assert by_policy.triaged and by_operator.triaged


def test_a_quarantined_finding_is_moved_away_but_still_open_to_triage():
    result = ScanResult(verdict="Infected", action_status="done", action="tagged+quarantined")
    assert result.quarantined and result.moved_away and not result.triaged
    assert result.action == "tagged+quarantined"
