"""The console app has no tables of its own.

The module exists so that Django sends ``post_migrate`` for this app, which creates the roles.
"""
