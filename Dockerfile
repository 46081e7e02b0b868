# The Eye: one image for every role; the command picks it (`serve --no-processor` for an
# API node, `worker` for a processor, `migrate` for the one-shot schema upgrade).
# Its dependencies are the versions of requirements.lock, checked against the lock's hashes;
# the Python is the one the lock is resolved for.

FROM python:3.11-slim AS build
WORKDIR /src
# Every locked distribution (the lock is one file for all extras, so the dev tools too: only
# what the server and its drivers need leaves this stage).
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# Built with the locked setuptools, from the wheels above only.
RUN pip wheel --no-cache-dir --no-deps --no-index --find-links /wheels --wheel-dir /wheels .

FROM python:3.11-slim
# No compiler in the final image: every dependency ships a binary wheel. Nothing but the
# checked wheels can be installed (--no-index), so every version is the locked one.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels \
        'the-eye[server,postgres,redis]' \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --create-home --home-dir /app the-eye
USER the-eye
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    THE_EYE_HOST=0.0.0.0 \
    THE_EYE_PORT=8000
EXPOSE 8000
# SIGTERM lets a worker finish the batch in hand and the API drain its requests.
STOPSIGNAL SIGTERM
ENTRYPOINT ["the-eye"]
CMD ["serve", "--no-processor"]
