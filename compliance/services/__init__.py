"""Compliance writes, by subject: flags, cases (with decisions and answers), reports, review."""
