"""Writes the fuzzers' seed corpus (Tests/FuzzCorpus/<target>/): small valid files of every form
the parsers accept, written by numpy and safetensors themselves, so that the fuzzers start from
what real users feed the engine. Names starting refused_ are forms refused on purpose. Run once;
the output is committed (python3 make_seeds.py)."""
import io, os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))

def out(target, name, data):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    with open(os.path.join(here, target, name), "wb") as f:
        f.write(data)

def npy(array, version=None):
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array)
    else:
        np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()

rng = np.random.default_rng(0)
arrays = {
    "f32_2d": rng.standard_normal((3, 2)).astype(np.float32),
    "f64_1d": rng.standard_normal(4),
    "u8_3d": rng.integers(0, 256, (2, 3, 2), dtype=np.uint8),
    "i64": np.arange(5, dtype=np.int64),
    "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
    "bool": np.array([True, False, True]),
    "f32_big_endian": np.arange(4, dtype=">f4"),
    "refused_f64_fortran": np.asfortranarray(rng.standard_normal((2, 3))),
    "scalar": np.float32(1.5).reshape(()),
    "empty": np.zeros((0, 3), np.float32),
    "nan_inf": np.array([np.nan, np.inf, -np.inf, 0.0], np.float32),
}
for name, array in arrays.items():
    out("npy", name + ".npy", npy(array))
out("npy", "f32_v2.npy", npy(arrays["f32_2d"], version=(2, 0)))
out("npy", "f32_v3.npy", npy(arrays["f32_2d"], version=(3, 0)))

for compressed in (False, True):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        buffer, theta=arrays["f32_2d"], x=arrays["u8_3d"], label=arrays["i64"])
    out("npz", ("compressed" if compressed else "stored") + ".npz", buffer.getvalue())
buffer = io.BytesIO()
np.savez(buffer)
out("npz", "empty.npz", buffer.getvalue())

def safetensors(tensors, metadata=None):
    from safetensors.numpy import save
    return save(tensors, metadata=metadata)

out("safetensors", "model.safetensors", safetensors(
    {"flow.0.weight": arrays["f32_2d"], "flow.0.bias": np.zeros(2, np.float32)},
    metadata={"format": "sbi-gpu"}))
out("safetensors", "dtypes.safetensors", safetensors(
    {"a": arrays["f64_1d"], "b": arrays["i32"], "c": arrays["u8_3d"], "d": arrays["i64"],
     "e": np.zeros((0, 2), np.float32), "f": np.array(2, np.float32)}))
out("safetensors", "half.safetensors", safetensors({"w": arrays["f32_2d"].astype(np.float16)}))

# The prior target reads its first byte as the dimension (0: none, else the byte mod 17) and the
# rest as one spec a line; an mvn spec's "files" are ;-separated numbers (see SBIFuzz).
priors = {
    "uniform": b"\x00uniform:-1,1",
    "uniform_broadcast": b"\x03uniform:0,2",
    "uniform_per_dimension": b"\x00uniform:-1,1\nuniform:0,5\nbox:2,3",
    "gaussian": b"\x02gaussian:0,0.1",
    "normal_per_dimension": b"\x00normal:1,2\ngaussian:-3,0.5",
    "mvn": b"\x02mvn:0;1,1;0.5;0.5;2",
    "refused_mvn_bad_covariance": b"\x00mvn:0;0,1;2;2;1",
    "refused_mixed": b"\x00uniform:0,1\ngaussian:0,1",
}
for name, data in priors.items():
    out("prior", name + ".txt", data)
