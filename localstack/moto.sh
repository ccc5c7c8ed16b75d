#!/bin/sh
# S3 without Docker: moto's S3 server on loopback with the bucket `lakeflux`, in the foreground.
# It prints the AWS_* variables and the `lakeflux serve` command to use; Ctrl-C stops it.
#   localstack/moto.sh [--port 9000] [--bucket lakeflux] [--host 127.0.0.1]
# Needs lakeflux with its test extras (moto[server] is one): the repo's .venv (`make test` builds it), or the
# Python named by $PYTHON.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$here/../.venv/bin/python" ]; then
    python="$here/../.venv/bin/python"
  else
    echo "no $here/../.venv: run \`make test\` once in the checkout (it installs lakeflux with its test" \
         "extras, moto among them), or set PYTHON to a Python that has them" >&2
    exit 1
  fi
fi
exec "$python" -m lakeflux.testing.s3server "$@"
