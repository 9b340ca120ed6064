"""The box a task is given on a worker, as CCTools' manager sizes it (our own checks, both workers).

One worker of 4 cores, 200 MB memory, 200 MB disk and 8 gpus; each case sets a category's maximum
(what the task is taken to declare), minimum and mode, runs ``/bin/echo`` and reads
``resources_allocated``. With ``proportional-resources`` on (the API's default), a task that
declares only some resources gets the same share of the worker in the others; off, it gets the
whole worker in them.
"""

from __future__ import annotations

import pytest

import coffea_wq.work_queue as wq
from tests.work_queue.helpers import WORKER_KINDS, queue_with_worker, wait_for

CORES, MEMORY, DISK, GPUS = 4, 200, 200, 8
WHOLE = {"cores": CORES, "memory": MEMORY, "disk": DISK, "gpus": 0}
FIXED = wq.WORK_QUEUE_ALLOCATION_MODE_FIXED
MIN_WASTE = wq.WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE


def allocated(q: wq.WorkQueue, category: str, mode: int, maximum: dict, minimum: dict | None = None) -> dict:
    q.specify_category_max_resources(category, maximum)
    q.specify_category_min_resources(category, minimum or {})
    q.specify_category_mode(category, mode)
    task = wq.Task("/bin/echo hello")
    task.specify_category(category)
    q.submit(task)
    done = wait_for(q, 60)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, (done.result_str, done.output)
    box = done.resources_allocated
    return {"cores": box.cores, "memory": box.memory, "disk": box.disk, "gpus": box.gpus}


@pytest.fixture(params=WORKER_KINDS)
def queue(request, processes, tmp_path):
    q = queue_with_worker(request.param, processes, tmp_path / "worker", cores=CORES, memory=MEMORY, disk=DISK,
                          gpus=GPUS)
    yield q
    q.shutdown()


@pytest.mark.slow
def test_boxes_of_fixed_and_automatic_categories(queue):
    # everything declared: exactly that, and undeclared gpus are none
    assert allocated(queue, "all", FIXED, {"cores": 1, "memory": 2, "disk": 3, "gpus": 4}) == \
        {"cores": 1, "memory": 2, "disk": 3, "gpus": 4}
    assert allocated(queue, "no_gpus", FIXED, {"cores": 1, "memory": 2, "disk": 3}) == \
        {"cores": 1, "memory": 2, "disk": 3, "gpus": 0}
    # a gpu task that does not ask for cores gets none
    assert allocated(queue, "gpus_no_cores", FIXED, {"gpus": 4, "memory": 2, "disk": 3}) == \
        {"cores": 0, "memory": 2, "disk": 3, "gpus": 4}
    # zeros declare nothing: the whole worker
    assert allocated(queue, "zeros", FIXED, {"cores": 0, "memory": 0, "disk": 0, "gpus": 0}) == WHOLE
    # half the memory: half the cores and half the disk (proportional, the default)
    assert allocated(queue, "half_memory", FIXED, {"memory": MEMORY / 2}) == \
        {"cores": CORES / 2, "memory": MEMORY / 2, "disk": DISK / 2, "gpus": 0}
    # a minimum wins over the proportional share
    assert allocated(queue, "half_memory_min", FIXED, {"memory": MEMORY / 2}, {"cores": 3, "gpus": 2}) == \
        {"cores": 3, "memory": MEMORY / 2, "disk": DISK / 2, "gpus": 2}
    # all the cores: the whole worker
    assert allocated(queue, "all_cores", FIXED, {"cores": CORES}) == WHOLE
    # an automatic category that has measured nothing: the whole worker
    assert allocated(queue, "auto", MIN_WASTE, {}) == WHOLE
    # ... unless it was given a first-allocation guess, used at once
    queue.specify_category_first_allocation_guess("auto_guess", {"cores": 1, "memory": 2, "disk": 3})
    assert allocated(queue, "auto_guess", MIN_WASTE, {}) == {"cores": 1, "memory": 2, "disk": 3, "gpus": 0}


@pytest.mark.slow
def test_proportional_tunes(queue):
    # 30% of the memory: with whole tasks (the default) the share is 1/3, so 3 such tasks fill the worker
    assert allocated(queue, "third", FIXED, {"memory": 60}) == \
        {"cores": 1, "memory": 60, "disk": 66, "gpus": 0}
    queue.tune("proportional-whole-tasks", 0)
    assert allocated(queue, "third_exact", FIXED, {"memory": 60}) == \
        {"cores": 1, "memory": 60, "disk": 60, "gpus": 0}
    # proportional off: undeclared resources are the whole worker (coffea's executor sets this)
    queue.tune("proportional-resources", 0)
    assert allocated(queue, "half_memory_whole", FIXED, {"memory": MEMORY / 2}) == \
        {"cores": CORES, "memory": MEMORY / 2, "disk": DISK, "gpus": 0}
    # CCTools' older spelling works too
    queue.tune("force-proportional-resources", 1)
    assert allocated(queue, "half_memory_again", FIXED, {"memory": MEMORY / 2}) == \
        {"cores": CORES / 2, "memory": MEMORY / 2, "disk": DISK / 2, "gpus": 0}
