"""The one place where errors become messages and exit codes (as nagiosplugin's `guarded()`).

Place in the pipeline: the CLI. Every command runs inside `guarded`: a `DoctorError` (bad topology,
option, lock, history, a lab command that failed) is one line and exit 3 (UNKNOWN, as Nagios spells
"could not check"); an unexpected exception too, with its traceback only under `-v`. The lines are
masked: credentials in URIs and headers always, the topology's own secrets once it is loaded
(`Masks.know`). Where the line goes is the command's: stderr for `run`, the plugin's stdout for
`nagios`. Building the parser imports this module on every start: nothing heavy at import.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from xivo_doctor.foundation.errors import DoctorError, TopologyError

if TYPE_CHECKING:
    from xivo_doctor.foundation.redact import Redactor
    from xivo_doctor.topology.model import Topology

UNKNOWN = 3  # Nagios' UNKNOWN (foundation/results.py Verdict.UNKNOWN; tests/cli/test_startup.py holds them equal)


class Masks:
    """What an error line is masked with."""

    def __init__(self) -> None:
        self._always: Redactor | None = None
        self._topology: Redactor | None = None

    def know(self, topology: Topology) -> None:
        """From now on, the topology's secrets are masked too."""
        from xivo_doctor.topology.redaction import redactor_for

        self._topology = redactor_for(topology)

    def text(self, text: str) -> str:
        if self._topology is not None:
            text = self._topology.text(text)
        return self._base().text(text)

    def credentials(self, text: str) -> str:
        """A topology error's words: the loader names keys, never a secret's value."""
        return self._base().credentials(text)

    def _base(self) -> Redactor:
        if self._always is None:  # made on first use: a start that prints no error need not import it
            from xivo_doctor.foundation.redact import Redactor

            self._always = Redactor()
        return self._always


def on_stderr(message: str) -> None:
    """How a command other than `nagios` says it could not check."""
    print(f"xivo-doctor: error: {message}", file=sys.stderr)


def guarded(body: Callable[[], int], *, say: Callable[[str], None], masks: Masks, verbose: bool = False) -> int:
    """`body()`'s exit code; or, when it raises, the one line `say` prints and exit 3."""
    try:
        return body()
    except TopologyError as exc:
        say(masks.credentials(str(exc)))
    except DoctorError as exc:
        say(masks.text(str(exc)))
    except KeyboardInterrupt:
        say("interrupted")
    except BrokenPipeError:
        # The reader went away (`xivo-doctor checks | head -3`): as any Unix filter, stop quietly;
        # stdout is pointed at /dev/null so that the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a filter killed by the broken pipe
    except Exception as exc:  # a bug: still one line and UNKNOWN, never a bare traceback
        if verbose:
            import traceback

            print(masks.text(traceback.format_exc()), file=sys.stderr, end="", flush=True)
        say(masks.text(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback; "
                       "please report it)"))
    return UNKNOWN
