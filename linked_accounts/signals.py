"""What linked accounts tell the apps built on them (the apps connect in their AppConfig.ready).

linked_accounts imports nothing of theirs: an app that created something in a tenant's account (the
scanning app's queues and notifications) removes it when the account is torn down.
"""

from django.dispatch import Signal

# Sent by ``services.teardown_account`` with ``tenant``, ``actor`` and ``account``; each receiver
# removes what its app created in the account and returns a ``services.TeardownReport``.
account_teardown = Signal()
