"""The transition table itself: ends are ends, every state is reachable, retries land legally."""

from __future__ import annotations

from services.ledger import END_STATES, RETRY_TARGET, TRANSITIONS, JobState, can_move

S = JobState


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert all(set(targets) <= set(JobState) for targets in TRANSITIONS.values())


def test_end_states_are_exactly_the_final_outcomes() -> None:
    assert {S.DONE, S.REJECTED, S.DUPLICATE, S.SKIPPED} == END_STATES
    assert S.FAILED not in END_STATES  # failed waits for retry or reject


def test_every_state_is_reachable_from_received() -> None:
    seen, todo = {S.RECEIVED}, [S.RECEIVED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(JobState)


def test_every_non_end_state_can_finish() -> None:
    """No state traps a job: from each one some path reaches an end state."""
    for start in set(JobState) - END_STATES:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & END_STATES, start


def test_retry_targets_are_legal_moves() -> None:
    for failed_from, target in RETRY_TARGET.items():
        assert can_move(failed_from, S.FAILED), failed_from
        assert can_move(S.FAILED, target), target
    # every state that can fail has somewhere to retry to
    assert {s for s in JobState if can_move(s, S.FAILED)} == set(RETRY_TARGET)


def test_submitted_work_never_goes_back_before_submission() -> None:
    assert RETRY_TARGET[S.SUBMITTED] is S.SUBMITTED
    assert not can_move(S.SUBMITTED, S.READY)
    assert not can_move(S.DONE, S.FAILED)
