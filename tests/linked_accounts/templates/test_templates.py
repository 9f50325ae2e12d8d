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


# A small evaluator of the CloudFormation intrinsics the templates use, so tests read the policy a
# stack would really get for given parameter values (cfn-lint checks syntax, not what is granted).
_NO_VALUE = object()
_PSEUDO = {"AWS::Partition": "aws", "AWS::AccountId": "111122223333", "AWS::NoValue": _NO_VALUE}


def _resolve(node, template, params):
    if isinstance(node, list):
        return [v for v in (_resolve(item, template, params) for item in node) if v is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((name, arg),) = node.items()
        if name == "Ref":
            if arg in _PSEUDO:
                return _PSEUDO[arg]
            parameter = template["Parameters"][arg]
            value = params.get(arg, parameter.get("Default"))
            if parameter["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            return value
        if name == "Fn::Sub":
            text = arg
            for pseudo, value in _PSEUDO.items():
                if isinstance(value, str):
                    text = text.replace("${" + pseudo + "}", value)
            assert "${" not in text, text
            return text
        if name == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(_resolve(items, template, params))
        if name == "Fn::Split":
            delimiter, text = arg
            return _resolve(text, template, params).split(delimiter)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if _condition(condition, template, params) else when_false
            return _resolve(chosen, template, params)
        if name == "Fn::Equals":
            left, right = (_resolve(v, template, params) for v in arg)
            return left == right
        if name == "Fn::Not":
            return not _resolve(arg[0], template, params)
    return {
        k: v for k, v in ((k, _resolve(v, template, params)) for k, v in node.items()) if v is not _NO_VALUE
    }


def _condition(name, template, params):
    return _resolve(template["Conditions"][name], template, params)


def _granted(template, **params):
    """The role's statements as deployed with ``params``, each Resource as a list."""
    properties = template["Resources"]["S3avRole"]["Properties"]
    policy = _resolve(properties["Policies"][0]["PolicyDocument"], template, params)
    statements = []
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        statements.append(
            {**statement, "Resource": resources if isinstance(resources, list) else [resources]}
        )
    return statements


def _writes(statement):
    return [a for a in statement["Action"] if a.split(":")[1].startswith(("Put", "Delete", "Abort"))]


def _resources_for(statements, action):
    return sorted({r for s in statements if action in s["Action"] for r in s["Resource"]})


S3_WRITES = [
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
]


def test_the_narrow_form_grants_writes_only_on_the_named_buckets():
    template = templates.role_template(PRINCIPAL, EXTERNAL_ID)
    granted = _granted(template, WritableBuckets="staging-bucket,quarantine-bucket", EnableReadGate="true")
    named = ["arn:aws:s3:::quarantine-bucket", "arn:aws:s3:::staging-bucket"]
    for action in S3_WRITES:
        assert _resources_for(granted, action) == [f"{arn}/*" for arn in named], action
    assert _resources_for(granted, "s3:PutBucketNotification") == named
    assert _resources_for(granted, "s3:PutBucketPolicy") == named
    # Every statement that writes anything in S3 names buckets: no wildcard is left.
    for statement in granted:
        if any(a.startswith("s3:") for a in _writes(statement)):
            assert all("*" not in r.removesuffix("/*") for r in statement["Resource"]), statement
    # Reads stay on every bucket: discovery and on-demand scans of any bucket.
    assert _resources_for(granted, "s3:GetObject") == ["arn:aws:s3:::*/*"]
    assert _resources_for(granted, "s3:ListAllMyBuckets") == ["*"]


def test_the_default_form_grants_writes_on_every_bucket_as_documented():
    granted = _granted(templates.role_template(PRINCIPAL, EXTERNAL_ID), EnableReadGate="true")
    for action in S3_WRITES:
        assert _resources_for(granted, action) == ["arn:aws:s3:::*/*"], action
    assert _resources_for(granted, "s3:PutBucketNotification") == ["*"]
    assert _resources_for(granted, "s3:PutBucketPolicy") == ["*"]
    assert not any(s["Sid"] == "ReadGate" for s in _granted(templates.role_template(PRINCIPAL, EXTERNAL_ID)))


def test_the_narrow_form_uses_the_principals_partition():
    template = templates.role_template("arn:aws-cn:iam::000000000000:root", EXTERNAL_ID)
    granted = _granted(template, WritableBuckets="b1")
    assert _resources_for(granted, "s3:PutObject") == ["arn:aws-cn:s3:::b1/*"]


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("", True),
        ("my-bucket", True),
        ("logs.example.com", True),
        ("*", False),
        ("b*", False),
        ("a/b", False),
    ],
)
def test_the_bucket_list_accepts_only_bucket_names(name, accepted):
    import re

    pattern = templates.role_template(PRINCIPAL, EXTERNAL_ID)["Parameters"]["WritableBuckets"][
        "AllowedPattern"
    ]
    # CloudFormation matches the pattern against each value of the list, whole.
    assert (re.fullmatch(pattern, name) is not None) is accepted


def test_the_stackset_hands_the_bucket_list_to_every_member_stack():
    template = templates.stackset_template(PRINCIPAL, EXTERNAL_ID)
    stackset = template["Resources"]["S3avRoleStackSet"]["Properties"]
    assert _resolve(stackset, template, {}).get("Parameters") is None
    narrow = _resolve(stackset, template, {"WritableBuckets": "a-bucket,b-bucket"})
    assert narrow["Parameters"] == [
        {"ParameterKey": "WritableBuckets", "ParameterValue": "a-bucket,b-bucket"}
    ]
    member = json.loads(stackset["TemplateBody"])
    assert member["Parameters"]["WritableBuckets"] == template["Parameters"]["WritableBuckets"]
