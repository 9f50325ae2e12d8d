"""CloudFormation templates a tenant deploys to let s3av into one AWS account (or an Organization).

A plain module: no Django. ``role_template`` is the per-account stack; ``stackset_template`` wraps it in
a service-managed StackSet for the management account of an AWS Organization (Control Tower landing
zones deploy it to every account of the chosen OUs, including accounts added later).

What the role may do, and why (least privilege; everything else is denied):

- read objects and versions, list buckets and their versions, read bucket location, versioning and
  encryption: discovery and scanning;
- read and write object (version) tags: the verdict tags;
- put objects, delete objects and versions, multipart copy: quarantine, promotion and the delete action;
- read and write the bucket notification configuration: protection (s3av merges, never replaces);
- create, configure, read from and delete SQS queues named ``s3av-*`` in this account only: the
  event queues of protected buckets and their dead-letter queues;
- optionally ``kms:Decrypt`` and ``kms:GenerateDataKey`` on the KMS keys the tenant lists;
- optionally read and write bucket policies, only if the tenant opts into the read gate.

Every write (object tags, put, delete, abort multipart, the bucket notification configuration and,
with the read gate, the bucket policy) is granted on every bucket of the account unless the
``WritableBuckets`` parameter lists bucket names: then only on those buckets and their objects. Reads
stay on every bucket (discovery, and scans of any bucket on demand).
"""

from __future__ import annotations

import json
from typing import Any

QUEUE_PREFIX = "s3av-"
ROLE_NAME_DEFAULT = "s3av-scanner"

_S3_BUCKET_ACTIONS = [
    "s3:ListAllMyBuckets",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketNotification",
]
_S3_BUCKET_WRITE_ACTIONS = ["s3:PutBucketNotification"]
_S3_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:ListMultipartUploadParts",
]
_S3_OBJECT_WRITE_ACTIONS = [
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
]
# One S3 bucket name (3-63 lower-case letters, digits, dots, hyphens) or nothing: no wildcard can
# widen the narrow form. CloudFormation matches each value of a CommaDelimitedList against it.
_BUCKET_NAME_PATTERN = r"(|[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
WRITABLE_BUCKETS_PARAMETER: dict[str, Any] = {
    "Type": "CommaDelimitedList",
    "Default": "",
    "AllowedPattern": _BUCKET_NAME_PATTERN,
    "Description": "Bucket names s3av may write to: every bucket it scans, plus their quarantine and "
    "promotion destinations. Empty: every bucket in the account.",
}
_SQS_ACTIONS = [
    "sqs:CreateQueue",
    "sqs:DeleteQueue",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes",
    "sqs:TagQueue",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
]


def _partition(service_principal: str) -> str:
    # The role can only be assumed from the principal's own partition, so its ARNs share it.
    parts = service_principal.split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "arn" and parts[1] else "aws"


def _writable(partition: str, suffix: str, everything: Any) -> dict[str, Any]:
    """The ARNs of the ``WritableBuckets`` (``suffix`` "/*" for their objects), or ``everything``.

    CloudFormation has no map over a list, so the names are joined with the ARN prefix as separator
    and split again: ``a,b`` becomes ``arn:aws:s3:::a/*,arn:aws:s3:::b/*``.
    """
    prefix = f"arn:{partition}:s3:::"
    joined = {
        "Fn::Join": ["", [prefix, {"Fn::Join": [f"{suffix},{prefix}", {"Ref": "WritableBuckets"}]}, suffix]]
    }
    return {"Fn::If": ["HasWritableBuckets", {"Fn::Split": [",", joined]}, everything]}


def role_template(service_principal: str, external_id: str, description: str = "") -> dict[str, Any]:
    """The per-account stack: one IAM role trusting ``service_principal`` only with ``external_id``."""
    partition = _partition(service_principal)
    statements: list[Any] = [
        {"Sid": "Buckets", "Effect": "Allow", "Action": _S3_BUCKET_ACTIONS, "Resource": "*"},
        {
            "Sid": "BucketWrites",
            "Effect": "Allow",
            "Action": _S3_BUCKET_WRITE_ACTIONS,
            "Resource": _writable(partition, "", "*"),
        },
        {
            "Sid": "Objects",
            "Effect": "Allow",
            "Action": _S3_OBJECT_ACTIONS,
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::*/*"},
        },
        {
            "Sid": "ObjectWrites",
            "Effect": "Allow",
            "Action": _S3_OBJECT_WRITE_ACTIONS,
            "Resource": _writable(partition, "/*", {"Fn::Sub": "arn:${AWS::Partition}:s3:::*/*"}),
        },
        {
            "Sid": "EventQueues",
            "Effect": "Allow",
            "Action": _SQS_ACTIONS,
            "Resource": {"Fn::Sub": f"arn:${{AWS::Partition}}:sqs:*:${{AWS::AccountId}}:{QUEUE_PREFIX}*"},
        },
        {
            # Scan results published to the tenant's own SNS topics (notification channels).
            "Sid": "Notifications",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:sns:*:${AWS::AccountId}:*"},
        },
        {
            "Fn::If": [
                "HasKmsKeys",
                {
                    "Sid": "Kms",
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": {"Ref": "KmsKeyArns"},
                },
                {"Ref": "AWS::NoValue"},
            ]
        },
        {
            "Fn::If": [
                "AllowReadGate",
                {
                    "Sid": "ReadGate",
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketPolicy", "s3:PutBucketPolicy"],
                    "Resource": _writable(partition, "", "*"),
                },
                {"Ref": "AWS::NoValue"},
            ]
        },
    ]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description
        or "s3av: a role that lets s3av scan this account's S3 buckets for malware.",
        "Parameters": {
            "RoleName": {
                "Type": "String",
                "Default": ROLE_NAME_DEFAULT,
                "AllowedPattern": r"[\w+=,.@-]{1,64}",
            },
            "KmsKeyArns": {
                "Type": "CommaDelimitedList",
                "Default": "",
                "Description": "ARNs of the KMS keys that encrypt scanned objects (empty: none).",
            },
            "EnableReadGate": {
                "Type": "String",
                "Default": "false",
                "AllowedValues": ["true", "false"],
                "Description": "Let s3av add its deny-unless-Clean statement to bucket policies.",
            },
            "WritableBuckets": WRITABLE_BUCKETS_PARAMETER,
        },
        "Conditions": {
            "HasKmsKeys": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "KmsKeyArns"}]}, ""]}]},
            "AllowReadGate": {"Fn::Equals": [{"Ref": "EnableReadGate"}, "true"]},
            "HasWritableBuckets": _has_writable_buckets(),
        },
        "Resources": {
            "S3avRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": service_principal},
                                "Action": "sts:AssumeRole",
                                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "s3av-scanning",
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                        }
                    ],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Give this ARN to s3av (verify the account).",
                "Value": {"Fn::GetAtt": ["S3avRole", "Arn"]},
            }
        },
    }


def _has_writable_buckets() -> dict[str, Any]:
    return {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "WritableBuckets"}]}, ""]}]}


def stackset_template(service_principal: str, external_id: str) -> dict[str, Any]:
    """For an Organization's management account: deploy the role to every account of the given OUs.

    ``external_id`` is the organisation link's: every account the StackSet reaches gets the same role,
    and each is then linked under the organisation and verified with that id. ``WritableBuckets`` is
    handed to every member stack (bucket names are global, so one list serves all accounts).
    """
    member = role_template(service_principal, external_id)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "s3av: deploy the s3av scanning role to every account of the given OUs.",
        "Parameters": {
            "OrganizationalUnitIds": {
                "Type": "CommaDelimitedList",
                "Description": "The OUs (ou-... or the root r-...) whose accounts get the role.",
            },
            "Regions": {
                "Type": "CommaDelimitedList",
                "Default": "us-east-1",
                "Description": "One region is enough: IAM is global.",
            },
            "WritableBuckets": WRITABLE_BUCKETS_PARAMETER,
        },
        "Conditions": {"HasWritableBuckets": _has_writable_buckets()},
        "Resources": {
            "S3avRoleStackSet": {
                "Type": "AWS::CloudFormation::StackSet",
                "Properties": {
                    "StackSetName": "s3av-scanner",
                    "PermissionModel": "SERVICE_MANAGED",
                    "AutoDeployment": {"Enabled": True, "RetainStacksOnAccountRemoval": False},
                    "Capabilities": ["CAPABILITY_NAMED_IAM"],
                    "ManagedExecution": {"Active": True},
                    "OperationPreferences": {"FailureTolerancePercentage": 10, "MaxConcurrentPercentage": 25},
                    "StackInstancesGroup": [
                        {
                            "DeploymentTargets": {"OrganizationalUnitIds": {"Ref": "OrganizationalUnitIds"}},
                            "Regions": {"Ref": "Regions"},
                        }
                    ],
                    "Parameters": {
                        "Fn::If": [
                            "HasWritableBuckets",
                            [
                                {
                                    "ParameterKey": "WritableBuckets",
                                    "ParameterValue": {"Fn::Join": [",", {"Ref": "WritableBuckets"}]},
                                }
                            ],
                            {"Ref": "AWS::NoValue"},
                        ]
                    },
                    "TemplateBody": json.dumps(member, sort_keys=False),
                },
            }
        },
    }


def render(template: dict[str, Any], syntax: str = "json") -> str:
    if syntax == "yaml":
        import yaml  # PyYAML; only needed for YAML output

        return str(yaml.safe_dump(template, sort_keys=False, width=120))
    return json.dumps(template, indent=2)
