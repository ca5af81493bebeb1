"""Smoke test of Jittor on a CUDA machine: the ops jnerf relies on, compared with numpy on full arrays."""
import numpy as np
import jnerf  # noqa: F401  (prepares Jittor's environment, applies the CUDA 13 patch)
import jittor as jt

jt.flags.use_cuda = 1
rng = np.random.default_rng(0)
x = rng.standard_normal((1000, 37)).astype(np.float32)
checks = {}
checks["roundtrip"] = np.array_equal(jt.array(x).numpy(), x)
checks["elementwise"] = np.allclose((jt.array(x) * 2 + 1).numpy(), x * 2 + 1)
a, b = rng.standard_normal((256, 128)).astype(np.float32), rng.standard_normal((128, 64)).astype(np.float32)
checks["matmul"] = np.allclose(jt.matmul(jt.array(a), jt.array(b)).numpy(), a @ b, atol=1e-3)
checks["cumsum"] = np.allclose(jt.cumsum(jt.array(x), dim=1).numpy(), np.cumsum(x, 1), atol=1e-4)
idx, _ = jt.argsort(jt.array(x[:, 0]))
checks["argsort"] = np.array_equal(idx.numpy(), np.argsort(x[:, 0], kind="stable"))
checks["fp16"] = np.allclose(jt.array(x).float16().float32().numpy(), x.astype(np.float16).astype(np.float32))
y = jt.code(x.shape, "float32", [jt.array(x)],
            cuda_src="""__global__ void k(float* a, float* b, int n){int i=blockIdx.x*blockDim.x+threadIdx.x; if(i<n) b[i]=a[i]*3.f;}
            k<<<(in0->num+255)/256,256>>>(in0_p, out0_p, in0->num);""")
checks["jt.code"] = np.allclose(y.numpy(), x * 3)
for k, v in checks.items():
    print(f"{k:12s} {'ok' if v else 'FAIL'}")
print("cuda_archs", jt.flags.cuda_archs)
assert all(checks.values())
