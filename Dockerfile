# nearline worker image: CPU-only torch, the project, nothing else.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY towers ./towers
COPY index ./index
COPY diskio ./diskio
RUN pip install .
RUN useradd --create-home nearline && mkdir -p /data && chown nearline /data
USER nearline
ENV NEARLINE_HOME=/data
ENTRYPOINT ["nearline"]
CMD ["worker"]
