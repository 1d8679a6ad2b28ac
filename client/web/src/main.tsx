import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { getLang } from './i18n.js';
import './styles.css';

document.documentElement.lang = getLang();
createRoot(document.getElementById('root')!).render(<App />);
