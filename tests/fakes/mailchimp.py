"""A fake Mailchimp Marketing API 3.0 (batch list members, archive), following the documented contract.

  Authorization: Basic base64(<any user>:<api key>), else 401 {"title": "API Key Invalid", "detail", "status"}
  POST /3.0/lists/{list_id} {"members": [{"email_address", "status", "merge_fields"}], "update_existing"}:
      at most 500 members (else 400 "Invalid Resource"); an unknown list is 404; 200 {"new_members",
      "updated_members", "errors": [{"email_address", "error", "error_code"}], "total_created",
      "total_updated", "error_count"}: an email containing "invalid" or a bad status is refused, an existing
      member without update_existing too (ERROR_CONTACT_EXISTS)
  DELETE /3.0/lists/{list_id}/members/{md5(lower(email))}: archives, 204; 404 when there is no such member
Members live in `members[list_id][email] = {"status", "merge_fields"}` (archived ones have status "archived").
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from .api_server import Answer, FakeApi

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


class Mailchimp(FakeApi):
    def __init__(self, api_key: str = "0123456789abcdef-us6", lists: tuple[str, ...] = ("abc123",)) -> None:
        self.api_key = api_key
        self.members: dict[str, dict[str, dict[str, Any]]] = {list_id: {} for list_id in lists}
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        auth = headers.get("Authorization") or ""
        if not auth.startswith("Basic "):
            return False
        return base64.b64decode(auth[6:]).decode().partition(":")[2] == self.api_key

    def unauthorized(self) -> Answer:
        return 401, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "API Key Invalid",
                     "status": 401, "detail": "Your API key may be invalid, or you've attempted to access the "
                                              "wrong datacenter.", "instance": ""}, {}

    @staticmethod
    def _error(status: int, title: str, detail: str) -> Answer:
        return status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title,
                        "status": status, "detail": detail, "instance": ""}, {}

    def active(self, list_id: str = "abc123") -> dict[str, dict[str, Any]]:
        return {e: m for e, m in self.members[list_id].items() if m["status"] != "archived"}

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        parts = path.strip("/").split("/")
        if parts[:2] != ["3.0", "lists"] or len(parts) < 3:
            return self._error(404, "Resource Not Found", f"no route {method} {path}")
        list_id = parts[2]
        if list_id not in self.members:
            return self._error(404, "Resource Not Found", "The requested resource could not be found.")
        store = self.members[list_id]
        if method == "DELETE" and len(parts) == 5 and parts[3] == "members":
            email = next((e for e in store if hashlib.md5(e.lower().encode()).hexdigest() == parts[4]), None)
            if email is None or store[email]["status"] == "archived":
                return self._error(404, "Resource Not Found", "The requested resource could not be found.")
            store[email]["status"] = "archived"
            return 204, None, {}
        if method != "POST" or len(parts) != 3:
            return self._error(405, "Method Not Allowed", f"{method} {path}")
        body = json.loads(raw)
        members = body.get("members") or []
        if len(members) > 500:
            return self._error(400, "Invalid Resource", f"The batch contains {len(members)} members, the maximum "
                                                        "is 500.")
        new, updated, errors = [], [], []
        for member in members:
            email = str(member.get("email_address") or "")
            if "invalid" in email or "@" not in email:
                errors.append({"email_address": email, "error": f"{email} looks fake or invalid, please enter a "
                                                                "real email address.", "error_code": "ERROR_GENERIC"})
            elif member.get("status") not in STATUSES:
                errors.append({"email_address": email, "error": "Invalid status", "error_code": "ERROR_GENERIC"})
            elif email.lower() in store and store[email.lower()]["status"] != "archived" \
                    and not body.get("update_existing"):
                errors.append({"email_address": email, "error": f"{email} is already a list member",
                               "error_code": "ERROR_CONTACT_EXISTS"})
            else:
                key = email.lower()
                (updated if key in store else new).append({"email_address": email})
                current = store.setdefault(key, {"merge_fields": {}})
                current["status"] = member["status"]
                current["merge_fields"].update(member.get("merge_fields") or {})
        return 200, {"new_members": new, "updated_members": updated, "errors": errors, "total_created": len(new),
                     "total_updated": len(updated), "error_count": len(errors)}, {}
