"""Which S3 client for ``S3FileStore``: boto3, obstore or s3fs, measured
against moto's S3 server on 127.0.0.1 (the README cites the figures).

    .venv/bin/python bench/store_clients.py [--mb 50] [--rounds 3]

Each client uploads a file of ``--mb`` MiB from disk (streamed: multipart
where the client does it), reads it back streamed, and signs a URL; the
best of ``--rounds``. The server is local, so the figures compare the
clients' own costs (CPU, copies, chunking), not a network.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
BUCKET = "bench"


def best(rounds: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION=REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    size = args.mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.whl"
        with source.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1024 * 1024))
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        results: dict[str, dict[str, float]] = {}

        def drain(stream: object, read: Callable[[int], bytes]) -> None:
            while read(1024 * 1024):
                pass

        # boto3: upload_file (multipart over 8 MiB, threads), get_object streamed.
        results["boto3"] = {
            "put": best(args.rounds, lambda: client.upload_file(str(source), BUCKET, "boto3.whl")),
            "get": best(
                args.rounds, lambda: drain(None, client.get_object(Bucket=BUCKET, Key="boto3.whl")["Body"].read)
            ),
            "sign": best(
                args.rounds,
                lambda: [
                    client.generate_presigned_url(
                        "get_object", Params={"Bucket": BUCKET, "Key": "boto3.whl"}, ExpiresIn=300
                    )
                    for _ in range(1000)
                ],
            )
            / 1000,
        }
        try:
            import obstore
            from obstore.store import S3Store

            store = S3Store(
                BUCKET,
                endpoint=endpoint,
                region=REGION,
                access_key_id="bench",
                secret_access_key="bench",
                client_options={"allow_http": True},
            )

            def obstore_get() -> None:
                for _chunk in obstore.get(store, "obstore.whl").stream(min_chunk_size=1024 * 1024):
                    pass

            results["obstore"] = {
                "put": best(args.rounds, lambda: obstore.put(store, "obstore.whl", source)),
                "get": best(args.rounds, obstore_get),
                "sign": best(
                    args.rounds,
                    lambda: [obstore.sign(store, "GET", "obstore.whl", timedelta(seconds=300)) for _ in range(1000)],
                )
                / 1000,
            }
        except ImportError:
            print("obstore not installed: skipped")
        try:
            import s3fs

            fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint, "region_name": REGION})

            def s3fs_get() -> None:
                with fs.open(f"{BUCKET}/s3fs.whl", "rb") as stream:
                    drain(stream, stream.read)

            results["s3fs"] = {
                "put": best(args.rounds, lambda: fs.put(str(source), f"{BUCKET}/s3fs.whl")),
                "get": best(args.rounds, s3fs_get),
                "sign": best(args.rounds, lambda: [fs.url(f"{BUCKET}/s3fs.whl", expires=300) for _ in range(1000)])
                / 1000,
            }
            print(f"s3fs {s3fs.__version__}")
        except ImportError:
            print("s3fs not installed: skipped")
    server.stop()
    print(f"{args.mb} MiB file, best of {args.rounds}, moto server on 127.0.0.1")
    print(f"{'client':10} {'put s':>8} {'put MB/s':>9} {'get s':>8} {'get MB/s':>9} {'sign us':>8}")
    for name, r in results.items():
        mb = size / 1e6
        put, get = f"{r['put']:8.3f} {mb / r['put']:9.0f}", f"{r['get']:8.3f} {mb / r['get']:9.0f}"
        print(f"{name:10} {put} {get} {r['sign'] * 1e6:8.0f}")


if __name__ == "__main__":
    main()
