"""What was done to an object is kept in fields (issue 9), not in the "+"-joined ``action`` string.

The string is read once here into the flags; the API's ``action`` is computed from them (identical
text). "Object gone" is read from the old rule (an Error whose message said so) for the rows before it.
"""

from django.db import migrations, models

FLAGS = ("stored", "tagged", "promoted", "quarantined", "deleted", "superseded", "released")


def _parse(text, verdict, resolution):
    # A frozen copy of scanning.models.parse_action_text as of this migration.
    tokens = [token for token in (text or "").split("+") if token]
    triage = ""
    last = tokens[-1] if tokens else ""
    if last in {"releasing", "deleting"}:
        triage = tokens.pop()
    elif last == "released" and not (len(tokens) == 1 and verdict == "InfectedAllowed"):
        triage = tokens.pop()
    elif last == "deleted" and resolution != "deleted_by_policy":
        triage = tokens.pop()
    return {name: name in tokens for name in FLAGS}, triage


def _text(row):
    done = [name for name in FLAGS if getattr(row, name)]
    if row.action_status == "failed":
        done.append("failed")
    base = "+".join(done) or ("none" if row.action_status == "done" else "")
    if not row.triage_action:
        return base
    return f"{base}+{row.triage_action}" if base else row.triage_action


def split_actions(apps, schema_editor):
    ScanResult = apps.get_model("scanning", "ScanResult")
    rows = ScanResult.objects.exclude(action="").only("pk", "action", "verdict", "resolution")
    for row in rows.iterator(chunk_size=2000):
        flags, triage = _parse(row.action, row.verdict, row.resolution)
        ScanResult.objects.filter(pk=row.pk).update(triage_action=triage, **flags)
    ScanResult.objects.filter(verdict="Error", message__contains="no longer exists").update(object_gone=True)


def join_actions(apps, schema_editor):
    ScanResult = apps.get_model("scanning", "ScanResult")
    for row in ScanResult.objects.all().iterator(chunk_size=2000):
        ScanResult.objects.filter(pk=row.pk).update(action=_text(row))


class Migration(migrations.Migration):

    dependencies = [
        ("scanning", "0008_signature_updates_and_agents"),
    ]

    operations = [
        migrations.AddField(
            model_name="scanresult",
            name="stored",
            field=models.BooleanField(default=False, help_text="Written to the bucket by the scan API."),
        ),
        migrations.AddField(model_name="scanresult", name="tagged", field=models.BooleanField(default=False)),
        migrations.AddField(
            model_name="scanresult",
            name="promoted",
            field=models.BooleanField(default=False, help_text="Copied to the policy's destination."),
        ),
        migrations.AddField(
            model_name="scanresult", name="quarantined", field=models.BooleanField(default=False)
        ),
        migrations.AddField(
            model_name="scanresult",
            name="deleted",
            field=models.BooleanField(default=False, help_text="The policy deleted the version."),
        ),
        migrations.AddField(
            model_name="scanresult",
            name="superseded",
            field=models.BooleanField(default=False, help_text="A newer verdict or upload applies instead."),
        ),
        migrations.AddField(
            model_name="scanresult",
            name="released",
            field=models.BooleanField(default=False, help_text="The copy a release restored from quarantine."),
        ),
        migrations.AddField(
            model_name="scanresult",
            name="triage_action",
            field=models.CharField(
                blank=True,
                choices=[
                    ("releasing", "Releasing"),
                    ("released", "Released"),
                    ("deleting", "Deleting"),
                    ("deleted", "Deleted"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="scanresult", name="object_gone", field=models.BooleanField(default=False)
        ),
        migrations.RunPython(split_actions, join_actions),
        migrations.RemoveField(model_name="scanresult", name="action"),
    ]
