"""The read gate's bucket policy statements: what they deny, evaluated the way IAM documents it.

moto's server does not enforce bucket policies, so these tests cannot send a CopyObject and watch it
fail. Instead they evaluate the generated statements with the documented semantics of the condition
operators they use (Null, StringNotLike, StringNotEquals, ForAnyValue:StringEquals, ArnNotEquals; a
negated operator is true when its key is absent from the request) against the requests an attacker
and s3av send, and check the merge into an existing policy on the local endpoint.
"""

import fnmatch
import json

import pytest
from django_scopes import scope

from accounts.services import Actor
from scanning.buckets import read_gate
from tests.factories import make_bucket_row

pytestmark = pytest.mark.django_db


ATTACKER = "arn:aws:iam::999988887777:user/mallory"
UPLOADER = "arn:aws:iam::123456789012:user/uploader"


def _values(value):
    return value if isinstance(value, list) else [value]


def _operator_holds(operator, key, expected, context):
    present = key in context
    actual = _values(context.get(key, []))
    expected = _values(expected)
    if operator == "Null":
        return (not present) == (expected[0] == "true")
    if operator == "StringNotLike":
        return not any(fnmatch.fnmatchcase(a, e) for a in actual for e in expected)
    if operator == "StringNotEquals":
        return not any(a in expected for a in actual)
    if operator == "ArnNotEquals":
        return not any(fnmatch.fnmatchcase(a, e) for a in actual for e in expected)
    if operator == "ForAnyValue:StringEquals":
        return any(a in expected for a in actual)
    raise AssertionError(f"no evaluator for {operator}: use only documented operators")


def _denies(statements, action, resource, context):
    """True when one of the Deny statements applies to this request."""
    for statement in statements:
        assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
        if action not in statement["Action"] or not fnmatch.fnmatchcase(resource, statement["Resource"]):
            continue
        if all(
            _operator_holds(operator, key, expected, context)
            for operator, keys in statement["Condition"].items()
            for key, expected in keys.items()
        ):
            return True
    return False


@pytest.fixture
def gated(tenant, moto_account):
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, "protected-bucket")
        return bucket, read_gate.statements(bucket)


def test_a_copy_from_another_bucket_is_denied_whatever_tags_it_brings(gated):
    bucket, statements = gated
    target = f"arn:aws:s3:::{bucket.name}/invoice.pdf"
    for source in ["attacker-bucket/clean.exe", "/attacker-bucket/clean.exe", "protected-bucket-2/x"]:
        # The default tagging directive (COPY) names no tag, so no s3:RequestObjectTagKeys at all.
        copy = {"aws:PrincipalArn": ATTACKER, "s3:x-amz-copy-source": source}
        assert _denies(statements, "s3:PutObject", target, copy), source
    via_access_point = "arn:aws:s3:us-east-1:999988887777:accesspoint/ap/object/clean.exe"
    copy = {"aws:PrincipalArn": UPLOADER, "s3:x-amz-copy-source": via_access_point}
    assert _denies(statements, "s3:PutObject", target, copy)


def test_copies_within_the_bucket_uploads_and_s3avs_own_copies_are_allowed(gated):
    bucket, statements = gated
    target = f"arn:aws:s3:::{bucket.name}/renamed.pdf"
    for source in [f"{bucket.name}/invoice.pdf", f"/{bucket.name}/a/b.pdf?versionId=abc"]:
        copy = {"aws:PrincipalArn": UPLOADER, "s3:x-amz-copy-source": source}
        assert not _denies(statements, "s3:PutObject", target, copy), source
    assert not _denies(statements, "s3:PutObject", target, {"aws:PrincipalArn": UPLOADER})
    promotion = {"aws:PrincipalArn": bucket.account.role_arn, "s3:x-amz-copy-source": "staging/x.pdf"}
    assert not _denies(statements, "s3:PutObject", target, promotion)


def test_the_verdict_tag_cannot_be_sent_and_unscanned_objects_cannot_be_read(gated):
    bucket, statements = gated
    target = f"arn:aws:s3:::{bucket.name}/x"
    forged = {"aws:PrincipalArn": UPLOADER, "s3:RequestObjectTagKeys": ["team", "scan-result"]}
    assert _denies(statements, "s3:PutObject", target, forged)
    assert _denies(statements, "s3:PutObjectTagging", target, forged)
    unscanned = {"aws:PrincipalArn": UPLOADER}
    assert _denies(statements, "s3:GetObject", target, unscanned)
    clean = {"aws:PrincipalArn": UPLOADER, "s3:ExistingObjectTag/scan-result": "Clean"}
    assert not _denies(statements, "s3:GetObject", target, clean)
    scanner = {"aws:PrincipalArn": bucket.account.role_arn}
    assert not _denies(statements, "s3:GetObject", target, scanner)


def test_the_statements_use_only_documented_s3_condition_keys(gated):
    _, statements = gated
    documented = {"s3:x-amz-copy-source", "s3:RequestObjectTagKeys", "aws:PrincipalArn"}
    for statement in statements:
        for keys in statement["Condition"].values():
            for key in keys:
                assert key in documented or key.startswith("s3:ExistingObjectTag/"), key


def test_applying_the_gate_keeps_the_customers_statements(tenant, moto_account, s3_client, make_bucket):
    name = make_bucket()
    theirs = {
        "Sid": "CustomerReadOnly",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    s3_client.put_bucket_policy(
        Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": theirs})
    )
    with scope(tenant=tenant):
        bucket = make_bucket_row(tenant, moto_account, name)
        read_gate.apply(tenant, Actor.system("test"), bucket)
        read_gate.apply(tenant, Actor.system("test"), bucket)
        expected = read_gate.statements(bucket)
    policy = json.loads(s3_client.get_bucket_policy(Bucket=name)["Policy"])
    assert policy["Statement"] == [theirs, *expected]
