"""Adapters to the outside world: FairShip ROOT ntuples, ONNX graphs and SOFIE C++."""
