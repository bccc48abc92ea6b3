# crm-bridge daemon image: `docker build -t crm-bridge .`
# Run: docker run -v ./config.toml:/etc/crm-bridge/config.toml:ro \
#        -v crm-bridge-state:/var/lib/crm-bridge --env-file secrets.env -p 9464:9464 crm-bridge
# See docs/operations.md (secrets come from the environment, never from the image or the TOML).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crm_bridge ./crm_bridge
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRM_BRIDGE_CONFIG=/etc/crm-bridge/config.toml \
    CRM_BRIDGE_STORE__URL=sqlite:////var/lib/crm-bridge/state.sqlite3 \
    CRM_BRIDGE_LOGGING__FORMAT=json \
    MALLOC_ARENA_MAX=2
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && groupadd --system --gid 10001 crm-bridge \
 && useradd --system --uid 10001 --gid crm-bridge --home-dir /var/lib/crm-bridge \
      --shell /usr/sbin/nologin crm-bridge \
 && mkdir -p /var/lib/crm-bridge /etc/crm-bridge \
 && chown crm-bridge:crm-bridge /var/lib/crm-bridge
VOLUME ["/var/lib/crm-bridge"]
WORKDIR /var/lib/crm-bridge
USER crm-bridge
EXPOSE 9464
# 503 (a pair has not succeeded within --unhealthy-after intervals) or no answer: unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["crm-bridge", "daemon"]
CMD ["--metrics-host", "0.0.0.0", "--metrics-port", "9464"]
