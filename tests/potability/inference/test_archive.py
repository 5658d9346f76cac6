"""The archive's Google Cloud Storage adapter (potability/inference_archive.GcsStore) against a
loopback stand-in for the JSON API: the requests google-cloud-storage sends for it are checked
against Google's storage v1 discovery document (method, path, every query parameter declared),
the upload is create-only (ifGenerationMatch=0: a second upload of a day is refused, 412), and a
Parquet file written, stored, fetched and verified comes back row for row."""

from __future__ import annotations

import email.parser
import http.server
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

import gcp_discovery
import pytest

from potability.inference import archive as inference_archive


class FakeGcs:
    """Objects in a dict; every request recorded as (method, path, query)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> tuple[str, dict[str, str]]:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                owner.requests.append((self.command, url.path, query))
                return url.path, query

            def _send(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _meta(self, bucket: str, name: str) -> bytes:
                return json.dumps(
                    {
                        "kind": "storage#object",
                        "bucket": bucket,
                        "name": name,
                        "generation": "1",
                        "size": str(len(owner.objects[(bucket, name)])),
                    }
                ).encode()

            def do_POST(self) -> None:
                path, query = self._record()
                bucket = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path)[1]
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                message = email.parser.BytesParser().parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
                )
                meta_part, media_part = message.get_payload()
                name = json.loads(meta_part.get_payload(decode=True))["name"]
                if query.get("ifGenerationMatch") == "0" and (bucket, name) in owner.objects:
                    return self._send(412, b'{"error": {"code": 412, "message": "exists"}}')
                owner.objects[(bucket, name)] = media_part.get_payload(decode=True)
                self._send(200, self._meta(bucket, name))

            def do_GET(self) -> None:
                path, query = self._record()
                download = re.fullmatch(r"/download/storage/v1/b/([^/]+)/o/(.+)", path)
                get = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
                listing = re.fullmatch(r"/storage/v1/b/([^/]+)/o", path)
                bucket_get = re.fullmatch(r"/storage/v1/b/([^/]+)", path)
                if bucket_get:
                    # The library's best-effort bucket lookup (trace attributes only): refused
                    # as Google refuses it to the job's roles (objectCreator + objectViewer
                    # lack storage.buckets.get) - the adapter must work without it.
                    return self._send(403, b'{"error": {"code": 403, "message": "denied"}}')
                if download or get:
                    bucket, name = (download or get)[1], unquote((download or get)[2])
                    if (bucket, name) not in owner.objects:
                        return self._send(404, b'{"error": {"code": 404, "message": "none"}}')
                    if download or query.get("alt") == "media":
                        return self._send(
                            200, owner.objects[(bucket, name)], "application/octet-stream"
                        )
                    return self._send(200, self._meta(bucket, name))
                bucket = listing[1]
                items = [
                    json.loads(self._meta(b, n))
                    for b, n in sorted(owner.objects)
                    if b == bucket and n.startswith(query.get("prefix", ""))
                ]
                self._send(200, json.dumps({"kind": "storage#objects", "items": items}).encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gcs() -> Iterator[FakeGcs]:
    fake = FakeGcs()
    yield fake
    fake.close()


def _client(gcs: FakeGcs) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs.url},
    )


def _check_against_discovery(method: str, path: str, query: dict[str, str]) -> str:
    """The discovery method a recorded request is, all its query parameters declared."""
    doc = gcp_discovery.document("storage", "v1")
    objects = doc["resources"]["objects"]["methods"]
    common = set(doc["parameters"])
    bucket_get = doc["resources"]["buckets"]["methods"]["get"]
    if re.fullmatch("/storage/v1/" + bucket_get["path"].replace("{bucket}", "[^/]+"), path):
        spec, which = bucket_get, "buckets.get"
    elif method == "POST":
        spec, shape = (
            objects["insert"],
            objects["insert"]["mediaUpload"]["protocols"]["simple"]["path"],
        )
        assert re.fullmatch(shape.replace("{bucket}", "[^/]+"), path)
        assert query["uploadType"] == "multipart"
        which = "insert"
    elif path.startswith("/download/"):
        spec, which = objects["get"], "get"
        assert re.fullmatch(
            "/download/storage/v1/"
            + spec["path"].replace("{bucket}", "[^/]+").replace("{object}", ".+"),
            path,
        )
        assert query["alt"] == "media"
    elif path.endswith("/o"):
        spec, which = objects["list"], "list"
        assert re.fullmatch("/storage/v1/" + spec["path"].replace("{bucket}", "[^/]+"), path)
    else:
        spec, which = objects["get"], "get"
        assert re.fullmatch(
            "/storage/v1/" + spec["path"].replace("{bucket}", "[^/]+").replace("{object}", ".+"),
            path,
        )
    assert spec["httpMethod"] == method
    unknown = set(query) - set(spec["parameters"]) - common
    assert not unknown, (which, unknown)
    return which


@pytest.mark.integration
def test_a_day_is_stored_create_only_fetched_and_verified_through_the_json_api(
    gcs: FakeGcs, tmp_path: Path
) -> None:
    from google.api_core.exceptions import PreconditionFailed

    store = inference_archive.GcsStore("gs://arch-bucket/inference-log", client=_client(gcs))
    day = date(2026, 3, 1)
    schema = inference_archive.arrow_schema(
        [
            ("id", "bigint"),
            ("sensor_id", "text"),
            ("ph", "double precision"),
            ("inferred_at", "timestamp with time zone"),
        ]
    )
    rows = [
        (
            i,
            f"s{i % 3}",
            None if i % 4 == 0 else 7 + i / 10,
            datetime(2026, 3, 1, 0, 0, i, 123456, tzinfo=UTC),
        )
        for i in range(50)
    ]
    written = inference_archive.write_file(
        tmp_path / "d.parquet", schema, inference_archive.batches_of(iter(rows), 16), day
    )
    name = inference_archive.object_name(day)
    assert not store.exists(name)
    store.put(name, written.path)
    assert store.exists(name)
    assert ("arch-bucket", "inference-log/day=2026-03-01/water_inferences.parquet") in gcs.objects
    with pytest.raises(PreconditionFailed):  # never replaced: a day is archived once
        store.put(name, written.path)
    assert store.names() == [name]
    path, digest = inference_archive.fetch_verified(store, day, tmp_path)
    assert (
        (digest.rows, digest.sha256)
        == (written.rows, written.sha256)
        == (50, inference_archive.row_digest(rows).sha256)
    )
    assert [
        tuple(r.values()) for r in inference_archive.read_day(None, day, store).to_pylist()
    ] == rows  # type: ignore[arg-type]

    seen = [_check_against_discovery(*r) for r in gcs.requests]
    assert {"insert", "get", "list"} <= set(seen)
    uploads = [q for m, _, q in gcs.requests if m == "POST"]
    assert uploads and all(q.get("ifGenerationMatch") == "0" for q in uploads)
    assert quote("inference-log/day=2026-03-01/water_inferences.parquet", safe="") in " ".join(
        p for _, p, _ in gcs.requests
    )
