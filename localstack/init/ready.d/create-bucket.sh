#!/bin/sh
# Run by LocalStack once S3 is ready (mounted into /etc/localstack/init/ready.d).
set -eu
awslocal s3api head-bucket --bucket lakeflux 2>/dev/null || awslocal s3 mb s3://lakeflux
