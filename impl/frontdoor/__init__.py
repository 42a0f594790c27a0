"""The front door: the ``finalstate`` command line, and nothing else.

``cli`` parses a command, calls the one room that does it, and prints what it answers.

May import: every room.
"""
