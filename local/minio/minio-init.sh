#!/bin/sh
# Buckets and bucket notifications for MinIO, as topology/topology.ts declares them
# (test/unit/compose.test.ts keeps the two in step). Idempotent: safe to run again.
set -eu
mc alias set local http://minio:9000 minioadmin minioadmin
for bucket in raw lake warehouse; do
  mc mb --ignore-existing "local/$bucket"
done
# raw: every created object → etl
mc event add local/raw arn:minio:sqs::PIPELINE:webhook --event put --ignore-existing
# lake: ETL manifests → enrich (one per raw file; enrich reads the file's normalized objects from it)
mc event add local/lake arn:minio:sqs::PIPELINE:webhook --event put --prefix manifests/ --suffix .json --ignore-existing
mc event ls local/raw
mc event ls local/lake
