import "./old_loadgen.ts";
import { enterRole } from "../shared/runtime.ts";
enterRole();
