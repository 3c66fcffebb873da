"""Chaos, security part: the checks that live with their own modules, collected here once
more under the `chaos` mark so that `make chaos` runs them too (a few seconds in all).

- the stop never signals a process the launcher did not start, pid reuse simulated and real
  (tests/test_process.py);
- the systemd units keep their hardening (tests/test_systemd_units.py);
- the Supabase policies refuse writes with the anonymous key, checked in the real
  PostgreSQL as the matching role (tests/test_supabase_schema.py);
- outages replayed against the outbox in-process, and no secret in its logs or stored
  errors (tests/test_outbox.py).

"No secret in any log, result or commit" for whole runs is checked after every daemon run
of the chaos suite (tests/chaos/ledger.py: secrets_nowhere).
"""

from __future__ import annotations

import pytest

from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401
from tests.test_outbox import (  # noqa: F401 - re-collected under the chaos mark
    rest,
    test_no_secret_in_logs_or_stored_errors,
    test_outage_phases_end_with_every_row_delivered_once_in_order,
)
from tests.test_process import (  # noqa: F401
    started,
    test_process_outside_the_recorded_group_is_refused,
    test_real_pid_reuse_in_a_pid_namespace_is_not_signalled,
    test_stale_record_with_a_reused_pid_is_refused,
)
from tests.test_supabase_schema import test_anon_key_may_read_but_never_write  # noqa: F401
from tests.test_systemd_units import (  # noqa: F401
    test_daemon_restart_cannot_reach_training,
    test_env_example_names_only_the_secrets_and_holds_none,
    test_security_exposure_stays_low,
    test_units_keep_their_hardening,
)

pytestmark = pytest.mark.chaos
