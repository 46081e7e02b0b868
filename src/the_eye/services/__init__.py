"""Operations on the store that the HTTP API and the command line both run.

One module per operation: `replay` (errors through the checks again), `corrections` (edit or
delete an event), `retention` (purge what is past the retention period) and `schemas`
(register a schema version, or a directory of schema files). Each takes an engine and, where
events are checked, the process's `EventChecker`; each runs its writes in short transactions
of its own. The worker pipeline itself lives in `the_eye.processor`.
"""
