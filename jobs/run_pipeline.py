"""Ray job entrypoint: every stage of a run config, in order (`raysynth run`).

    ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml -- \
        python jobs/run_pipeline.py --config jobs/configs/local.yaml
"""

import sys

from _entry import main

if __name__ == "__main__":
    sys.exit(main("run"))
