#!/bin/sh
# S3 without Docker: moto's S3 server on loopback with the bucket `lakeflux`, in the foreground.
# It prints the AWS_* variables and the `lakeflux serve` command to use; Ctrl-C stops it.
#   localstack/moto.sh [--port 9000] [--bucket lakeflux] [--host 127.0.0.1]
# Needs the test extras (moto[server]); uses the repo's venv if there is one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$here/../.venv/bin/python" ]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi
exec "$python" -m lakeflux.testing.s3server "$@"
