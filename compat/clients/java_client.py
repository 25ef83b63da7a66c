"""Driver for the official Java client (kafka-clients 3.9.x) through compat/clients/java/Driver.java.

.ci/run (or `python -m compat.clients.java_client --setup`) extracts the jars into
compat/clients/java/lib/ and compiles the driver into compat/clients/java/build/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from compat.clients.features import FEATURES
from compat.clients.remote import RemoteClient

JAVA_DIR = Path(__file__).with_name("java")
LIB_DIR = JAVA_DIR / "lib"
BUILD_DIR = JAVA_DIR / "build"
JARS = ("kafka-clients", "lz4-java", "snappy-java", "zstd-jni", "slf4j-api")


class JavaClient(RemoteClient):
    """One JVM for the whole run, fed JSON lines."""

    name = "java"
    features = FEATURES["java"]
    cwd = JAVA_DIR

    @property
    def command(self) -> list[str]:  # type: ignore[override]
        return ["java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx768m",
                "-cp", f"{BUILD_DIR}:{LIB_DIR}/*", "Driver"]

    def start(self, bootstrap: str) -> None:
        """Check the set-up was done, then start the JVM."""
        if shutil.which("java") is None:
            raise RuntimeError("java not found on PATH")
        missing = [j for j in JARS if not (LIB_DIR / f"{j}.jar").exists()]
        if missing or not (BUILD_DIR / "Driver.class").exists():
            raise RuntimeError(f"Java driver not set up (missing {missing or 'build/Driver.class'}); "
                               "run .ci/run or: python -m compat.clients.java_client --setup WHEEL")
        super().start(bootstrap)


def setup(wheel: Path) -> None:
    """Extract the jars from the shigawire-apache-flink-libraries wheel and compile Driver.java."""
    import zipfile

    LIB_DIR.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for jar in JARS:
            with zf.open(f"pyflink/lib/{jar}.jar") as src, open(LIB_DIR / f"{jar}.jar", "wb") as dst:
                shutil.copyfileobj(src, dst)
    BUILD_DIR.mkdir(exist_ok=True)
    subprocess.run(["javac", "-cp", f"{LIB_DIR}/*", "-d", str(BUILD_DIR), str(JAVA_DIR / "Driver.java")],
                   check=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--setup":
        setup(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m compat.clients.java_client --setup PATH/TO/shigawire_apache_flink_libraries-*.whl")
