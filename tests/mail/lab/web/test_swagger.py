"""
Tests for the swagger checker in tests/mail/lab/web/swagger.py: it passes
answers that fit Mailpit's schemas, and finds, with a clear place and
reason, each kind of answer that does not.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.web.swagger import (
    SWAGGER,
    SchemaMismatch,
    body_schema,
    check_answer,
    load_mailpit_swagger,
    resolve,
    response_schema,
    schema_problems,
)


def address(email: str = "a@example.org") -> dict[str, str]:
    return {"Name": "A", "Address": email}


def summary() -> dict[str, Any]:
    """
    A message summary as Mailpit writes one.
    """
    return {
        "ID": "abc",
        "MessageID": "1@example.org",
        "Read": False,
        "From": address(),
        "To": [address("b@example.org")],
        "Cc": [],
        "Bcc": [],
        "ReplyTo": [],
        "Subject": "hi",
        "Created": "2026-12-01T10:00:00.123456789+01:00",
        "Username": "",
        "Tags": ["invoice"],
        "Size": 1234,
        "Attachments": 0,
        "Snippet": "hello",
    }


def messages() -> dict[str, Any]:
    return {
        "total": 1,
        "unread": 1,
        "messages_count": 1,
        "messages_unread": 1,
        "start": 0,
        "tags": ["invoice"],
        "messages": [summary()],
    }


class SwaggerCheckTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.swagger = load_mailpit_swagger()

    def problems(self, path: str, method: str, status: int, answer: Any) -> str:
        with self.assertRaises(SchemaMismatch) as caught:
            check_answer(self.swagger, path, method, status, answer)
        return str(caught.exception)

    def test_the_copy(self) -> None:
        """
        The copy is Mailpit's swagger 2.0 file with its 19 paths, and its
        licence note is beside it.
        """
        self.assertEqual(self.swagger["swagger"], "2.0")
        self.assertEqual(len(self.swagger["paths"]), 19)
        notice = SWAGGER.with_name("mailpit-swagger.LICENSE").read_text()
        self.assertIn("Copyright (c) 2022-Now() Ralph Slooten", notice)
        self.assertIn("MIT License", notice)

    def test_good_answers(self) -> None:
        """
        Answers that fit pass: a list (refs to definitions through a
        #/responses ref), headers (additionalProperties), a plain string.
        """
        check_answer(self.swagger, "/api/v1/messages", "get", 200, messages())
        check_answer(
            self.swagger,
            "/api/v1/message/{ID}/headers",
            "get",
            200,
            {"Subject": ["hi"], "Received": ["a", "b"]},
        )
        check_answer(self.swagger, "/api/v1/message/{ID}", "get", 404, "not found")
        check_answer(self.swagger, "/api/v1/send", "post", 200, {"ID": "x"})

    def test_wrong_types(self) -> None:
        """
        A wrong type is reported with its place, what was expected and what
        came; a boolean is not an integer, a float not an integer, and
        every problem is listed, not only the first.
        """
        answer = messages()
        answer["total"] = "1"
        answer["start"] = True
        answer["unread"] = 1.5
        answer["messages"][0]["From"]["Address"] = 5
        answer["messages"][0]["Tags"] = ["ok", 7]
        text = self.problems("/api/v1/messages", "get", 200, answer)
        self.assertIn("(5 problems)", text)
        for line in [
            'answer.total: expected integer, got string ("1")',
            "answer.start: expected integer, got boolean (true)",
            "answer.unread: expected integer, got number (1.5)",
            "answer.messages[0].From.Address: expected string, got integer (5)",
            "answer.messages[0].Tags[1]: expected string, got integer (7)",
        ]:
            self.assertIn(line, text)

    def test_missing_and_null(self) -> None:
        """
        A declared property that is missing is reported (Mailpit writes
        them all), unless only required ones are asked for; null (Go's nil
        slice) is not an empty array.
        """
        answer = messages()
        del answer["messages"][0]["Username"]
        answer["messages"][0]["Bcc"] = None
        text = self.problems("/api/v1/messages", "get", 200, answer)
        self.assertIn("answer.messages[0].Username: missing", text)
        self.assertIn("answer.messages[0].Bcc: null, expected array", text)
        schema = response_schema(self.swagger, "/api/v1/messages", "get", 200)
        assert schema is not None
        loose = schema_problems(self.swagger, schema, answer, all_properties=False)
        self.assertEqual(loose, ["answer.messages[0].Bcc: null, expected array"])
        nullable = {"type": "array", "x-nullable": True}
        self.assertEqual(schema_problems(self.swagger, nullable, None), [])

    def test_formats(self) -> None:
        """
        uint64 is never negative; date-time is RFC 3339 (nanoseconds and
        Z allowed, a date alone or an impossible date not).
        """
        answer = messages()
        answer["messages"][0]["Size"] = -1
        answer["messages"][0]["Created"] = "2026-12-01"
        text = self.problems("/api/v1/messages", "get", 200, answer)
        self.assertIn("answer.messages[0].Size: -1 is out of range for uint64", text)
        self.assertIn(
            "answer.messages[0].Created: '2026-12-01' is not an RFC 3339 date-time",
            text,
        )
        stamp = {"type": "string", "format": "date-time"}
        for good in ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.5-05:30"):
            self.assertEqual(schema_problems(self.swagger, stamp, good), [])
        for bad in ("2026-13-01T10:00:00Z", "2026-12-01 10:00:00Z", "x"):
            self.assertEqual(len(schema_problems(self.swagger, stamp, bad)), 1, bad)

    def test_additional_properties(self) -> None:
        """
        additionalProperties' schema applies to every undeclared key; extra
        properties are reported only when asked.
        """
        text = self.problems(
            "/api/v1/message/{ID}/headers", "get", 200, {"Subject": "hi"}
        )
        self.assertIn("answer['Subject']: expected array, got string", text)
        answer = messages()
        answer["extra"] = 1
        check_answer(self.swagger, "/api/v1/messages", "get", 200, answer)
        with self.assertRaises(SchemaMismatch) as caught:
            check_answer(
                self.swagger, "/api/v1/messages", "get", 200, answer, allow_extra=False
            )
        self.assertIn("answer.extra: not in the schema", str(caught.exception))

    def test_unknown_operations(self) -> None:
        """
        A path, method or status the file does not describe is an error
        that says so, not a pass.
        """
        self.assertIn("no path /api/v2/x", self.problems("/api/v2/x", "get", 200, {}))
        self.assertIn(
            "no PATCH /api/v1/messages (it has GET, PUT, DELETE)",
            self.problems("/api/v1/messages", "patch", 200, {}),
        )
        self.assertIn(
            "no 418 answer for GET /api/v1/info",
            self.problems("/api/v1/info", "get", 418, {}),
        )

    def test_refs(self) -> None:
        """
        References are followed through #/responses to #/definitions; one
        that names nothing is an error, not a silent pass.
        """
        schema = response_schema(self.swagger, "/api/v1/info", "get", 200)
        assert schema is not None
        self.assertIn("RuntimeStats", schema["properties"])
        broken = copy.deepcopy(self.swagger)
        broken["definitions"].pop("Address")
        with self.assertRaises(SchemaMismatch) as caught:
            check_answer(broken, "/api/v1/messages", "get", 200, messages())
        self.assertIn("'#/definitions/Address' names nothing", str(caught.exception))
        self.assertEqual(resolve(self.swagger, {"type": "string"}), {"type": "string"})

    def test_request_body(self) -> None:
        """
        The send API's body schema is found: From is required, and its
        own example fits it.
        """
        schema = body_schema(self.swagger, "/api/v1/send", "post")
        self.assertEqual(schema["required"], ["From"])
        example = {
            name: prop.get("example", "x")
            for name, prop in schema["properties"].items()
            if "example" in prop
        }
        example["From"] = {"Email": "john@example.com"}
        self.assertEqual(
            schema_problems(self.swagger, schema, example, all_properties=False), []
        )
        self.assertEqual(
            schema_problems(self.swagger, schema, {}, all_properties=False),
            ["answer.From: missing"],
        )
        with self.assertRaises(SchemaMismatch):
            body_schema(self.swagger, "/api/v1/info", "get")

    def test_whole_file_parses(self) -> None:
        """
        The copy is valid JSON as stored (it is read as UTF-8).
        """
        self.assertEqual(json.loads(SWAGGER.read_bytes()), self.swagger)
