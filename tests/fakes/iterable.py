"""A fake Iterable REST API (users/bulkUpdate and user deletion), following the documented contract.

  Api-Key: <key> (or the older api_key header), else 401 {"msg": "Invalid API key", "code": "BadApiKey",
      "params": {...}}
  POST /api/users/bulkUpdate {"users": [{"email"?, "userId"?, "dataFields": {...}, "preferUserId"?}]}: more than
      1,000 users is refused with 400 {"msg", "code": "BadParams"}, a request over 4 MB with 413, bad JSON with 400
      {"msg": "[/api/users/bulkUpdate] Invalid JSON body", "code": "BadJsonBody"}; otherwise 200 {"successCount",
      "failCount", "invalidEmails", "invalidUserIds", "filteredOutFields", "createdFields", "failedUpdates": {
      "invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds", "invalidDataEmails",
      "invalidDataUserIds", "conflictEmails", "conflictUserIds", "forgottenEmails", "forgottenUserIds"}}.
      A user is refused when its email is not an address (listed in invalidEmails, also at the top level), when
      it has neither email nor userId, when it is in `forgotten` (forgottenEmails / forgottenUserIds), or when
      its email belongs to a user with another userId (conflictEmails); the others are merged (data fields
      overwritten, null kept as null). With `anonymous_failures`, refused users are only counted in failCount,
      not named.
  DELETE /api/users/byUserId/{userId} and DELETE /api/users/{email}: 200 {"msg": "All users associated with ...
      were successfully deleted", "code": "Success"}, or 400 {"msg": "User does not exist. ...", "code":
      "BadParams"}.
Users live in `users[userId or email] = {"email"?, "userId"?, "dataFields": {...}}`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from .api_server import Answer, FakeApi

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LISTS = ("invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds", "invalidDataEmails",
         "invalidDataUserIds", "conflictEmails", "conflictUserIds", "forgottenEmails", "forgottenUserIds")


class Iterable(FakeApi):
    def __init__(self, api_key: str = "iterable-key-test") -> None:
        self.api_key = api_key
        self.users: dict[str, dict[str, Any]] = {}
        self.forgotten: set[str] = set()
        self.anonymous_failures = False
        super().__init__()

    def authorized(self, headers: Any) -> bool:
        return self.api_key in (headers.get("Api-Key"), headers.get("api_key"))

    def unauthorized(self) -> Answer:
        return 401, {"msg": "Invalid API key", "code": "BadApiKey", "params": {"endpoint": "/api/users"}}, {}

    def _find(self, email: str | None, user_id: str | None) -> str | None:
        if user_id is not None and user_id in self.users:
            return user_id
        for key, user in self.users.items():
            if email is not None and (user.get("email") or "").lower() == email.lower():
                return key
        return None

    def route(self, method: str, path: str, headers: Any, raw: bytes) -> Answer:
        if method == "DELETE" and path.startswith("/api/users/"):
            rest = path[len("/api/users/"):]
            if rest.startswith("byUserId/"):
                user_id, email = unquote(rest[len("byUserId/"):]), None
            else:
                user_id, email = None, unquote(rest)
            key = self._find(email, user_id)
            if key is None:
                return 400, {"msg": f"User does not exist. Email: {email or ''} UserId: {user_id or ''}",
                             "code": "BadParams", "params": None}, {}
            del self.users[key]
            return 200, {"msg": f"All users associated with {user_id or email} were successfully deleted",
                         "code": "Success", "params": None}, {}
        if method != "POST" or path != "/api/users/bulkUpdate":
            return 404, {"msg": f"no route {method} {path}", "code": "NotFound", "params": None}, {}
        if len(raw) > 4_000_000:
            return 413, {"msg": f"request of {len(raw)} bytes is over 4 MB", "code": "RequestTooLarge",
                         "params": None}, {}
        try:
            body = json.loads(raw)
            users = body["users"]
            assert isinstance(users, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            return 400, {"msg": "[/api/users/bulkUpdate] Invalid JSON body", "code": "BadJsonBody",
                         "params": None}, {}
        if len(users) > 1000:
            return 400, {"msg": f"users can contain at most 1000 entries, received {len(users)}",
                         "code": "BadParams", "params": None}, {}
        failed: dict[str, list[str]] = {name: [] for name in LISTS}
        fail_count = 0
        for user in users:
            email, user_id = user.get("email"), user.get("userId")
            if email is None and user_id is None:
                fail_count += 1
                continue
            if email is not None and not EMAIL.match(str(email)):
                failed["invalidEmails"].append(email)
                fail_count += 1
                continue
            if email in self.forgotten or user_id in self.forgotten:
                failed["forgottenUserIds" if user_id in self.forgotten else "forgottenEmails"].append(
                    user_id if user_id in self.forgotten else email)
                fail_count += 1
                continue
            owner = self._find(email, None) if email is not None else None
            if user_id is not None and owner is not None and self.users[owner].get("userId") != user_id:
                failed["conflictEmails"].append(email)  # the email belongs to another user
                fail_count += 1
                continue
            key = self._find(email, user_id) or (user_id if user_id is not None else email)
            profile = self.users.setdefault(key, {"dataFields": {}})
            if email is not None:
                profile["email"] = email
            if user_id is not None:
                profile["userId"] = user_id
            profile["dataFields"].update(user.get("dataFields") or {})
        if self.anonymous_failures:
            failed = {name: [] for name in LISTS}
        answer = {"successCount": len(users) - fail_count, "failCount": fail_count,
                  "invalidEmails": failed["invalidEmails"], "invalidUserIds": failed["invalidUserIds"],
                  "filteredOutFields": [], "createdFields": [], "noOpEmails": [], "noOpUserIds": [],
                  "failedUpdates": failed}
        return 200, answer, {}
