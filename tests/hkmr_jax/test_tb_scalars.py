"""`hkmr_jax.tb_scalars`: a resumed run's values replace the killed run's from its first
step on, as TensorBoard shows them; a record cut short ends its file."""

from tensorboardX import SummaryWriter

from hkmr_jax import tb_scalars


def test_a_resumed_writer_replaces_the_values_from_its_first_step(tmp_path):
    # Names sorting against the opening order (within one second, names differ by their
    # suffix alone): the files' first events order them.
    first = SummaryWriter(str(tmp_path), filename_suffix=".2")
    for step in (1, 2, 3, 4):
        first.add_scalar("train/loss", float(step), step)
    first.close()
    resumed = SummaryWriter(str(tmp_path), purge_step=3, filename_suffix=".1")  # from step 2
    resumed.add_scalar("train/loss", 30.0, 3)
    resumed.add_scalar("eval/mpjpe_mm", 100.0, 3)
    resumed.close()
    assert tb_scalars.read_scalars(tmp_path) == {
        "train/loss": {1: 1.0, 2: 2.0, 3: 30.0},
        "eval/mpjpe_mm": {3: 100.0},
    }


def test_a_record_cut_short_ends_its_file(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    writer.add_scalar("a", 1.0, 1)
    writer.add_scalar("a", 2.0, 2)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    path.write_bytes(path.read_bytes()[:-5])
    assert tb_scalars.read_scalars(tmp_path) == {"a": {1: 1.0}}
