"""Submodule of the greeter test plugin."""

WORD = "hello"


def greet(name):
    return f"{WORD} {name}"
