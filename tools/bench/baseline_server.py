"""`B_api`'s server: the minimal FastAPI endpoint — validate a small body, insert one row with asyncpg,
answer 201 — run by uvicorn in its own process, as the services are. Started by `kansrijk bench`."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

from tools.bench.baselines import INSERT, TABLE


class Row(BaseModel):
    payload: str


def baseline_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)  # as the services' pools
        await app.state.pool.execute(TABLE)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rows", status_code=201)
    async def add_row(row: Row) -> dict[str, str]:
        await app.state.pool.execute(INSERT, row.payload)
        return {"status": "stored"}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="the B_api baseline server")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    uvicorn.run(
        baseline_app(arguments.dsn), host="127.0.0.1", port=arguments.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
