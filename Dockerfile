# xner dashboard. The same install steps as the README's `make install`: torch first and pinned, then the pinned
# requirements, then the project itself.
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

# Dependencies first (a code change does not reinstall them). torch comes from its own index, pinned, so the
# requirements' torch==2.13.0 is already satisfied and pip never pulls another build.
COPY requirements.txt pyproject.toml README.md ./
RUN python -m pip install --upgrade pip \
    && python -m pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_INDEX}" \
    && python -m pip install -r requirements.txt

COPY --chown=xner:xner . .
# Editable, as `make install` does: xner_core reads its tables from the checkout's data/ folder.
RUN python -m pip install --no-deps -e .

USER xner
VOLUME ["/cache"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"

CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
