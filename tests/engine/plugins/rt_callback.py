"""Runtime test plugin: from process_writes, POSTs to this server's /api/v3/engine/<path> and waits."""

import json
import urllib.request


def process_writes(influxdb3_local, table_batches, args=None):
    url = f"{args['base']}/api/v3/engine/{args['path']}?mode=echo"
    body = json.dumps({"tables": [batch["table_name"] for batch in table_batches]}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Authorization": "Bearer x", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    influxdb3_local.cache.put("callback_reply", reply, use_global=True)
