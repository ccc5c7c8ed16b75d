"""Reliability plugin: writes garbage of every kind back to the server, then returns normally."""


class Garbage:
    def __init__(self, text):
        self.text = text

    def build(self):
        return self.text


def process_writes(influxdb3_local, table_batches, args=None):
    for text in ("not line protocol at all", "m,=x f=", "m f=1i 99999999999999999999999999", "\x00\xff", ""):
        influxdb3_local.write(Garbage(text))
    influxdb3_local.write_to_db("bad db name!", Garbage("m f=1i"))
    influxdb3_local.write_to_db("_internal", Garbage("m f=1i"))
    influxdb3_local.write(Garbage("garbage_types f=1i"))
    influxdb3_local.write(Garbage('garbage_types f="now a string"'))
    influxdb3_local.write(object())
