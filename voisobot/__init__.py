"""Voiso security bot: SQS intake → event parsing → SQLite store (→ alerts, in later modules).

Read the modules in the order a message travels: ``sqs`` (the queue client),
``events`` (parsing and validation), ``store`` (the SQLite cache), ``intake``
(the scheduled job tying them together), ``jobs`` (the scheduler).
"""
