"""python run.py PKG_DIR [pytest args...]: pytest with hm2bp imported from PKG_DIR (the editable
install's import hook, which would shadow it, is removed first)."""
import sys

pkg = sys.argv[1]
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, pkg)
import hm2bp  # noqa: E402

assert hm2bp.__file__.startswith(pkg), hm2bp.__file__
print("hm2bp from", hm2bp.__file__, hm2bp.build_info())
import pytest  # noqa: E402

sys.exit(pytest.main(sys.argv[2:]))
