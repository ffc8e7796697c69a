"""Bulk user-tag jobs: audiences read from files, the job kind, admin and command line."""
