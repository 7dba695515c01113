# xner dashboard. The same install steps as the README's `make install`: torch first and pinned, then the lock
# (requirements.txt, every other dependency at its exact version, installed by uv without resolving), then the
# package itself, non-editable: the image runs the installed `xner app`, not the checkout.
#
#   docker build -t xner .                                   # CPU build of torch (default)
#   docker build -t xner --build-arg TORCH_INDEX=cu128 .     # a CUDA build of torch (run with --gpus all)
#   docker run -p 8501:8501 -v xner-cache:/cache -v /path/to/wikiann:/data:ro xner
#
# The WikiANN data is not in the image: mount a directory of `<lang>/{train,dev,test,extra}.gz` files on /data,
# or leave it out to browse the committed results and the study's numbers (pages that need the corpus say so;
# with network access the Hugging Face `wikiann` dataset is used). Models and caches live in the /cache volume.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
# cpu | cu126 | cu128 | ... : the PyTorch wheel index (https://download.pytorch.org/whl/<index>)
ARG TORCH_INDEX=cpu

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOKENIZERS_PARALLELISM=false \
    XNER_CACHE_DIR=/cache \
    XNER_DATA_DIR=/data \
    HF_HOME=/cache/hf

RUN useradd --create-home --uid 1000 xner \
    && mkdir -p /app /cache /data \
    && chown xner:xner /app /cache /data
WORKDIR /app

# Dependencies first (a code change does not reinstall them). torch comes from its own index, pinned; the lock
# leaves torch out, so nothing pulls another build. uv compiles bytecode at build time (--compile-bytecode): the
# image runs with PYTHONDONTWRITEBYTECODE and a read-only site-packages, and without .pyc files every server start
# spent ~4 s more importing torch and transformers (measured on the 2-core CPU machine).
COPY requirements.txt ./
RUN python -m pip install "uv==$(sed -n 's/^uv==//p' requirements.txt)" \
    && python -m pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_INDEX}" \
    && uv pip install --system --no-deps --compile-bytecode -r requirements.txt

COPY --chown=xner:xner . .
RUN uv pip install --system --no-deps --compile-bytecode . && rm -rf /app/build

USER xner
VOLUME ["/cache"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"

CMD ["xner", "app", "--port", "8501", "--address", "0.0.0.0"]
