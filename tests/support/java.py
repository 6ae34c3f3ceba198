"""The AWS SDK for Java v2 client (tests/java/WhoAmI.java), built by tests/run.sh (tests/java/build.sh)."""
from __future__ import annotations

from .stack import ROOT

CLASSPATH = ROOT / "tests" / "java" / "build" / "classpath"


def whoami(*args: str) -> list[str]:
    """The command that runs WhoAmI (STS GetCallerIdentity through the SDK's default credentials chain)."""
    if not CLASSPATH.exists():
        raise RuntimeError(f"the Java SDK client is not built ({CLASSPATH} is missing): "
                           "run `bash tests/run.sh` (it builds it) or `bash tests/java/build.sh`")
    return ["java", "-cp", CLASSPATH.read_text().strip(), "WhoAmI", *args]
