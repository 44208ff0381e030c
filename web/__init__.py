"""Web studio: a FastAPI app (web/app.py), a job manager (web/jobs.py), engines per model
family (web/engines.py, web/fractal_engine.py) and a static page (web/static/).

    python -m web ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # -> http://127.0.0.1:8000
"""
