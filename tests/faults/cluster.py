"""A three-node RabbitMQ cluster of the fault suite's own, on this machine beside its RabbitMQ (left alone):
each node with its own name, AMQP and distribution ports, data directory, configuration and (empty)
plugin list, run as the rabbitmq user with the machine's Erlang cookie; started, clustered, and torn
down by the suite."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the Debian wrapper would drop our environment
RABBITMQ_USER = "rabbitmq"


@dataclass(frozen=True)
class Node:
    name: str  # kansrijk-c1@localhost
    port: int
    dist_port: int
    home: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class RabbitCluster:
    def __init__(self, workdir: Path, *, size: int = 3, base_port: int = 5791) -> None:
        self.workdir = workdir
        self.nodes = [
            Node(f"kansrijk-c{i}@localhost", base_port + i, base_port + 20000 + i, workdir / f"c{i}")
            for i in range(size)
        ]

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def url(self, vhost: str) -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@{self.nodes[0].address}/{quote(vhost, safe='')}"

    # -- life cycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        for node in self.nodes:
            self._prepare(node)
            await asyncio.to_thread(self._start, node)
        for node in self.nodes:
            await self._started(node)
        for node in self.nodes[1:]:
            await self.ctl(node, "stop_app")
            await self.ctl(node, "join_cluster", self.nodes[0].name)
            await self.ctl(node, "start_app")
        running = await self.ctl(self.nodes[0], "eval", "length(rabbit_nodes:all_running()).")
        assert running.strip() == str(len(self.nodes)), f"cluster of {running.strip()} nodes, not {len(self.nodes)}"

    def _prepare(self, node: Node) -> None:
        node.home.mkdir(parents=True, exist_ok=True)
        (node.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{node.port}\nloopback_users = none\n"
            "cluster_partition_handling = pause_minority\nqueue_leader_locator = balanced\n"
        )
        (node.home / "enabled_plugins").write_text("[].\n")
        (node.home / "env.conf").write_text("")
        shutil.chown(node.home, RABBITMQ_USER, RABBITMQ_USER)
        for path in node.home.iterdir():
            shutil.chown(path, RABBITMQ_USER, RABBITMQ_USER)

    def _environment(self, node: Node) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": "/var/lib/rabbitmq",  # the machine's Erlang cookie: rabbitmqctl reaches the nodes with it
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.home / "log"),
            "RABBITMQ_CONFIG_FILE": str(node.home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.home / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(node.home / "env.conf"),
            "RABBITMQ_PID_FILE": str(node.home / "pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _start(self, node: Node) -> None:
        subprocess.run(
            ["runuser", "-u", RABBITMQ_USER, "--", "env", "-i",
             *(f"{k}={v}" for k, v in self._environment(node).items()), SERVER, "-detached"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    async def ctl(self, node: Node, *args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run,
            ["rabbitmqctl", "-q", "-n", node.name, *args],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    async def running(self) -> Node:
        """A node that answers (for the commands the suite runs)."""
        for node in self.nodes:
            try:
                await self.ctl(node, "ping")
                return node
            except RuntimeError:
                continue
        raise RuntimeError("no node of the cluster answers")

    async def kill9(self, node: Node) -> None:
        """`kill -9` of the node's Erlang VM: no goodbye to its peers or its clients."""
        pid = int((node.home / "pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not await asyncio.to_thread(os.path.exists, f"/proc/{pid}"):
                return
            await asyncio.sleep(0.1)

    async def restart(self, node: Node) -> None:
        await asyncio.to_thread(self._start, node)
        await self._started(node)

    async def _started(self, node: Node, timeout: float = 120.0) -> None:
        """`-detached` returns before the node is reachable: wait for it to answer, then for its boot."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.ctl(node, "ping")
                break
            except RuntimeError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await self.ctl(node, "await_startup", "--timeout", str(int(timeout)))

    async def stop(self) -> None:
        for node in self.nodes:
            try:
                await self.ctl(node, "stop")
            except RuntimeError:  # not answering (killed, or never up): make sure no VM is left behind
                pid_file = node.home / "pid"
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what it holds --------------------------------------------------------------------------------

    async def leaders(self, vhost: str) -> Counter[str]:
        """How many of the vhost's quorum queues each node leads."""
        output = await self.ctl(await self.running(), "list_queues", "-p", vhost, "name", "type", "leader")
        counts: Counter[str] = Counter()
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1] == "quorum":
                counts[parts[2]] += 1
        return counts

    async def smallest_replication(self, vhost: str) -> int:
        """The fewest nodes any of the vhost's quorum queues is replicated on."""
        output = await self.ctl(await self.running(), "list_queues", "-p", vhost, "name", "type", "members")
        sizes = [line.split("\t")[2].count("@") for line in output.splitlines() if "\tquorum\t" in line]
        return min(sizes, default=0)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)
