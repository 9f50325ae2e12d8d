"""Attribute layouts of the identity providers we have presets for. No Django here."""

from __future__ import annotations

# Bound on the difference between the IdP's clock and ours when NotBefore / NotOnOrAfter are checked.
CLOCK_SKEW_SECONDS = 120

# What an attribute map names: our field -> the SAML attribute names tried in order.
MAP_FIELDS = ("uid", "email", "first_name", "last_name", "name")

_ENTRA = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"

PRESETS: dict[str, dict[str, object]] = {
    # Okta: attribute statements the admin adds in the app (Basic name format), groups by a group statement.
    "okta": {
        "attribute_map": {
            "email": ["email", "user.email"],
            "first_name": ["firstName", "user.firstName"],
            "last_name": ["lastName", "user.lastName"],
        },
        "group_attribute": "groups",
    },
    # Microsoft Entra ID: its default claims, named by URI; groups (object ids, or names for cloud groups).
    "entra": {
        "attribute_map": {
            "uid": ["http://schemas.microsoft.com/identity/claims/objectidentifier"],
            "email": [f"{_ENTRA}/emailaddress", f"{_ENTRA}/name"],
            "first_name": [f"{_ENTRA}/givenname"],
            "last_name": [f"{_ENTRA}/surname"],
            "name": ["http://schemas.microsoft.com/identity/claims/displayname"],
        },
        "group_attribute": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    },
    # Google Workspace: the NameID is the primary email; attributes are named by the admin's mapping.
    "google": {
        "attribute_map": {
            "email": ["email"],
            "first_name": ["first_name", "firstName"],
            "last_name": ["last_name", "lastName"],
        },
        "group_attribute": "groups",
    },
    # Keycloak and others: the SAML 2.0 / eduPerson OIDs most IdPs can send.
    "custom": {
        "attribute_map": {
            "email": ["urn:oid:0.9.2342.19200300.100.1.3", "email"],
            "first_name": ["urn:oid:2.5.4.42", "firstName"],
            "last_name": ["urn:oid:2.5.4.4", "lastName"],
        },
        "group_attribute": "",
    },
}
