"""moto's S3 server on 127.0.0.1 for the object-store tests (fixtures ``s3``
and ``bucket`` in conftest.py): a real S3 protocol server in a thread."""

from __future__ import annotations

import uuid

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
KEY = "testing"  # moto takes any credentials


class S3Server:
    """moto's S3 server in a thread; each test asks for a bucket of its own."""

    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=KEY
        )

    def bucket(self) -> str:
        name = f"files-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    @property
    def env(self) -> dict[str, str]:
        """What a process is given: the standard variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": KEY,
        }

    def settings(self, bucket: str, prefix: str = "files") -> dict[str, str]:
        """What an in-process app is given: the same, as settings."""
        return {
            "myapp.files_store": f"s3://{bucket}/{prefix}",
            "myapp.s3.endpoint_url": self.endpoint,
            "myapp.s3.region": REGION,
            "myapp.s3.access_key_id": KEY,
            "myapp.s3.secret_access_key": KEY,
        }

    def keys(self, bucket: str) -> dict[str, bytes]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {key: self.client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}
