# The Eye: one image for every role; the command picks it (`serve --no-processor` for an
# API node, `worker` for a processor, `migrate` for the one-shot schema upgrade).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# No compiler in the final image: every dependency ships a binary wheel.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
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
