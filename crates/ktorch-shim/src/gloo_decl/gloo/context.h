// See ktorch_decl.h: a stand-in for gloo's header of this name.
#pragma once
#include "ktorch_decl.h"
