"""The bottom of the stack: what every other package may import and nothing here imports.

`core.errors` holds the one family of user-fixable errors (exit 254); `core.history` the
history contract shared by the runner and the checkers (op shape, pairing, encoding).
"""
