import json

import pytest
from cfnlint.api import ManualArgs, lint

from linked_accounts import templates

PRINCIPAL = "arn:aws:iam::000000000000:root"
EXTERNAL_ID = "s3av-test-external-id"


def _lint(text: str) -> list[str]:
    return [str(m) for m in lint(text, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))]


def _statements(template):
    policy = template["Resources"]["S3avRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    found = []
    for statement in policy["Statement"]:
        if "Fn::If" in statement:
            found.append(statement["Fn::If"][1])
        else:
            found.append(statement)
    return found


@pytest.mark.parametrize("kind", ["account", "stackset"])
@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_cfn_lint_accepts_the_template(kind, syntax):
    render = templates.stackset_template if kind == "stackset" else templates.role_template
    assert _lint(templates.render(render(PRINCIPAL, EXTERNAL_ID), syntax)) == []


def test_cfn_lint_would_catch_a_broken_template():
    broken = templates.role_template(PRINCIPAL, EXTERNAL_ID)
    broken["Resources"]["S3avRole"]["Type"] = "AWS::IAM::Rolez"
    assert _lint(templates.render(broken)) != []


def test_it_trusts_only_the_service_principal_with_the_external_id():
    trust = templates.role_template(PRINCIPAL, EXTERNAL_ID)["Resources"]["S3avRole"]["Properties"][
        "AssumeRolePolicyDocument"
    ]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": PRINCIPAL}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}


def test_it_grants_no_wildcard_actions_and_only_s3av_queues():
    statements = _statements(templates.role_template(PRINCIPAL, EXTERNAL_ID))
    actions = [a for s in statements for a in s["Action"]]
    assert all("*" not in action for action in actions)
    assert "s3:PutBucketAcl" not in actions and "iam:PassRole" not in actions
    (queues,) = [s for s in statements if s["Sid"] == "EventQueues"]
    assert queues["Resource"]["Fn::Sub"].endswith(":s3av-*")
    (kms,) = [s for s in statements if s["Sid"] == "Kms"]
    assert sorted(kms["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert kms["Resource"] == {"Ref": "KmsKeyArns"}


def test_the_bucket_policy_permission_is_opt_in():
    template = templates.role_template(PRINCIPAL, EXTERNAL_ID)
    assert template["Parameters"]["EnableReadGate"]["Default"] == "false"
    (gate,) = [s for s in _statements(template) if s["Sid"] == "ReadGate"]
    assert "s3:PutBucketPolicy" in gate["Action"]


def test_the_stackset_deploys_the_same_role_to_the_organization():
    stackset = templates.stackset_template(PRINCIPAL, EXTERNAL_ID)["Resources"]["S3avRoleStackSet"][
        "Properties"
    ]
    assert stackset["PermissionModel"] == "SERVICE_MANAGED"
    assert stackset["AutoDeployment"]["Enabled"] is True
    assert json.loads(stackset["TemplateBody"]) == templates.role_template(PRINCIPAL, EXTERNAL_ID)
