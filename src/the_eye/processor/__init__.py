"""The worker pipeline: queued requests in, stored events and error records out.

`checks` holds the pure checks, `checker` the per-process checker that pairs them with the
`schemas` registry, `segment` maps Segment messages onto events, `batch` turns a batch of
messages into rows, and `worker` is the loop that takes batches from the queue and stores
them. Operations the API and the CLI run on stored data live in `the_eye.services`.
"""
