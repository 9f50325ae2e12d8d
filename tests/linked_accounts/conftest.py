from tests.linked_accounts.fixtures import aws_endpoint, moto_account  # noqa: F401
