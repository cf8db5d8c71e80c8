"""PyInstaller's hook for ``clothes_extractor``: the package's data files an app needs at run
time, the bundled models (both precisions: fp32 on the CPU, fp16 on a GPU) and the page
``serve`` answers at ``/``; not the model cards and their sheets."""

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("clothes_extractor", includes=["models/*.onnx", "serve/static/*"])
